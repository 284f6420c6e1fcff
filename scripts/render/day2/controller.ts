// edgeforge's own manifests for the system-upgrade-controller: namespace, service account, RBAC, settings and
// Deployment. One copy per repository, infrastructure/system-upgrade/, applied by every server's Flux
// Kustomization "system-upgrade". No Plan CRD: the controller registers its own (embedded in its binary) at every
// start with a full update, so a second copy from Flux would overwrite it on every reconcile and be overwritten
// on every restart; the pinned release's CRD is kept in upstream/crds/ to check the Plans against.
import type { Fleet } from '../../inventory/fleet.ts';
import { controllerImage, kubectlImage } from './upgrade-images.ts';

export const UPGRADE_NAMESPACE = 'system-upgrade';
export const UPGRADE_SERVICE_ACCOUNT = 'system-upgrade';
export const CONTROLLER_NAME = 'system-upgrade-controller';

/**
 * The controller's memory limit (MiB): a Go controller watching a handful of Nodes, Plans, Jobs and Secrets
 * of one small cluster. The kubelet kills it above this, so this is what the memory budget counts
 * (render/plan/memory.ts); GOMEMLIMIT is 90% of it so the Go runtime collects before it gets there.
 */
export const CONTROLLER_MEMORY_LIMIT_MIB = 64;
export const CONTROLLER_MEMORY_REQUEST_MIB = 24;

/** The controller's settings (its environment); each is a documented SYSTEM_UPGRADE_* variable. */
export function controllerEnv(fleet: Pick<Fleet, 'k3s'>): Record<string, string> {
  return {
    SYSTEM_UPGRADE_CONTROLLER_DEBUG: 'false',
    SYSTEM_UPGRADE_CONTROLLER_THREADS: '1',
    // an upgrade Job that has not finished in 15 minutes stops the Plan (it waits for the next spec change)
    SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS: '900',
    SYSTEM_UPGRADE_JOB_BACKOFF_LIMIT: '99',
    // an image already on the node (airgap, a mirror that is down) is used as it is
    SYSTEM_UPGRADE_JOB_IMAGE_PULL_POLICY: 'IfNotPresent',
    SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE: kubectlImage(fleet).pull,
    SYSTEM_UPGRADE_JOB_PRIVILEGED: 'true',
    SYSTEM_UPGRADE_JOB_TTL_SECONDS_AFTER_FINISH: '900',
    SYSTEM_UPGRADE_PLAN_POLLING_INTERVAL: '15m',
  };
}

const KEEP = { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' };
/** What the controller does, and what its Jobs (running as the same service account) do: cordon, drain, label. */
function clusterRole(): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: CONTROLLER_NAME },
    rules: [
      { apiGroups: ['upgrade.cattle.io'], resources: ['plans', 'plans/status'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'update', 'patch'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
      // drain: list and evict the node's pods, look up their owners
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'delete'] },
      { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
      { apiGroups: ['apps'], resources: ['daemonsets', 'replicasets', 'statefulsets'], verbs: ['get', 'list'] },
      { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['get', 'create', 'patch', 'update'] },
      // the controller registers its own Plan CRD at start (create, or a full update of the existing one)
      { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
    ],
  };
}

function namespacedRole(): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: CONTROLLER_NAME, namespace: UPGRADE_NAMESPACE },
    rules: [
      { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'] },
      { apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] },
    ],
  };
}

const subject = { kind: 'ServiceAccount', name: UPGRADE_SERVICE_ACCOUNT, namespace: UPGRADE_NAMESPACE };

function deployment(fleet: Pick<Fleet, 'k3s'>): Record<string, unknown> {
  const labels = { 'upgrade.cattle.io/controller': CONTROLLER_NAME };
  const limit = CONTROLLER_MEMORY_LIMIT_MIB;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: CONTROLLER_NAME, namespace: UPGRADE_NAMESPACE },
    spec: {
      replicas: 1,
      revisionHistoryLimit: 2,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: labels },
      template: {
        // the label keeps the controller out of its own drains
        metadata: { labels },
        spec: {
          serviceAccountName: UPGRADE_SERVICE_ACCOUNT,
          priorityClassName: 'system-cluster-critical',
          // on the cluster's server: an agent is drained during its own upgrade
          nodeSelector: { 'node-role.kubernetes.io/control-plane': 'true' },
          tolerations: [
            { key: 'CriticalAddonsOnly', operator: 'Exists' },
            { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
            { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
          ],
          containers: [
            {
              name: CONTROLLER_NAME,
              image: controllerImage(fleet).pull,
              imagePullPolicy: 'IfNotPresent',
              envFrom: [{ configMapRef: { name: `${CONTROLLER_NAME}-env` } }],
              env: [
                { name: 'SYSTEM_UPGRADE_CONTROLLER_NAME', valueFrom: { fieldRef: { fieldPath: "metadata.labels['upgrade.cattle.io/controller']" } } },
                { name: 'SYSTEM_UPGRADE_CONTROLLER_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'SYSTEM_UPGRADE_CONTROLLER_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                { name: 'GOMEMLIMIT', value: `${Math.floor(limit * 0.9)}MiB` },
              ],
              resources: { requests: { cpu: '10m', memory: `${CONTROLLER_MEMORY_REQUEST_MIB}Mi` }, limits: { memory: `${limit}Mi` } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }],
        },
      },
    },
  };
}

/** Every object of infrastructure/system-upgrade/controller.yaml, in apply order. */
export function controllerObjects(fleet: Pick<Fleet, 'k3s'>): Record<string, unknown>[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: UPGRADE_NAMESPACE, annotations: { ...KEEP } } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: UPGRADE_SERVICE_ACCOUNT, namespace: UPGRADE_NAMESPACE } },
    clusterRole(),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CONTROLLER_NAME },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER_NAME },
      subjects: [subject],
    },
    namespacedRole(),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: CONTROLLER_NAME, namespace: UPGRADE_NAMESPACE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_NAME },
      subjects: [subject],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${CONTROLLER_NAME}-env`, namespace: UPGRADE_NAMESPACE }, data: controllerEnv(fleet) },
    deployment(fleet),
  ];
}
