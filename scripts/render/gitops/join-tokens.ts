// What a multi-node site's server gets through Git about its agents (pure; lifecycle/join-tokens.ts writes it):
// clusters/<r>/<s>/<server>/join-tokens/, applied by the server's Flux Kustomization "join-tokens" (prune: true):
//   <agent>.token.yaml   one K3s bootstrap token per active agent, SOPS-encrypted to the server's key. Removing the
//                        file (revoke) makes Flux prune the Secret: the token stops working at once.
//   revoked-<agent>.yaml for a revoked agent: an admission policy refusing writes to Node <agent> by that node's own
//                        credentials (so its kubelet cannot re-register), and a Job deleting Node <agent> and its
//                        node-password Secret. Flux cannot delete what it never applied (prune and `$patch: delete`
//                        only drop objects from its own inventory), so deleting K3s's own objects needs a Job.
// The Secret's fields are what `k3s token create` writes (K3s pkg/cli/token, kubeadm BootstrapTokenToSecret); the
// K3s supervisor lets in the group system:bootstrappers (pkg/server/handlers/router.go), which every bootstrap
// token authenticates as. See docs/keys.md ("Agent join tokens").
import { createHash } from 'node:crypto';
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { devicePath } from '../flux/sync.ts';
import { toYaml, toYamlStream } from '../yaml.ts';

export const JOIN_TOKENS_DIR = 'join-tokens';
/** K3s's default for `k3s token create --groups` */
export const K3S_BOOTSTRAP_GROUP = 'system:bootstrappers:k3s:default-node-token';

export function joinTokensPath(server: Pick<ResolvedDevice, 'region' | 'site' | 'id'>): string {
  return `${devicePath(server)}/${JOIN_TOKENS_DIR}`;
}
export const tokenFile = (agentId: string) => `${agentId}.token.yaml`;
export const revokedFile = (agentId: string) => `revoked-${agentId}.yaml`;

/** The plaintext bootstrap-token Secret for one agent (SOPS-encrypt it before it goes anywhere). */
export function bootstrapTokenSecret(agentId: string, serverId: string, tok: { id: string; secret: string }, expires: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `bootstrap-token-${tok.id}`,
      namespace: 'kube-system',
      labels: { 'app.kubernetes.io/managed-by': 'edgeforge', 'edgeforge.dev/agent': agentId },
      // in clear (SOPS encrypts data/stringData only): lets edgeforge see a token is current without decrypting
      annotations: { 'edgeforge.dev/expires': expires },
    },
    type: 'bootstrap.kubernetes.io/token',
    stringData: {
      description: `edgeforge: join token of agent ${agentId} for ${serverId}`,
      'token-id': tok.id,
      'token-secret': tok.secret,
      expiration: expires,
      // authentication only: no signing of the cluster-info ConfigMap (K3s does not use it to join)
      'usage-bootstrap-authentication': 'true',
      'auth-extra-groups': K3S_BOOTSTRAP_GROUP,
    },
  };
}

/** A DNS-label name for per-agent objects: "revoke-<agent>", hashed when the id is too long. */
function objName(prefix: string, agentId: string): string {
  const n = `${prefix}-${agentId}`;
  return n.length <= 63 ? n : `${prefix}-${createHash('sha256').update(agentId).digest('hex').slice(0, 16)}`;
}

/**
 * Objects that close a revoked agent's way back in: admission policy + binding, and a Job with the least RBAC it
 * needs. `kubectl` is the inventory's pinned kubectl image (k3s.upgrade.kubectl, the one the upgrade Jobs use).
 * A Job's pod template cannot change, so the Job's name carries a hash of it: a new kubectl pin gives a new Job
 * (Flux creates it and prunes the old one) instead of an apply the API server refuses on every reconcile.
 */
export function revokedAgentObjects(agentId: string, kubectl: string): Record<string, unknown>[] {
  const name = objName('edgeforge-revoked', agentId);
  const sa = objName('revoke', agentId);
  const labels = { 'app.kubernetes.io/managed-by': 'edgeforge', 'edgeforge.dev/revoked-agent': agentId };
  const passwordSecret = `${agentId}.node-password.k3s`;
  const container = (args: string[]) => ({
    name: args[1] === 'node' ? 'delete-node' : 'delete-node-password',
    image: kubectl,
    command: ['kubectl'],
    args,
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 65534, capabilities: { drop: ['ALL'] } },
  });
  const template = {
    metadata: { labels },
    spec: {
      serviceAccountName: sa,
      restartPolicy: 'OnFailure',
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      // node first (K3s's garbage collector would also remove the password Secret it owns), then the Secret
      initContainers: [container(['delete', 'node', agentId, '--ignore-not-found', '--wait=false'])],
      containers: [container(['-n', 'kube-system', 'delete', 'secret', passwordSecret, '--ignore-not-found'])],
    },
  };
  const job = jobName(agentId, template);
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name, labels },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['nodes', 'nodes/status'] }] },
        validations: [{ expression: `request.userInfo.username != 'system:node:${agentId}'`, message: `${agentId} was revoked by edgeforge: its node credentials may not register or update a Node` }],
      },
    },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name, labels }, spec: { policyName: name, validationActions: ['Deny'] } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'kube-system', labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: sa, labels },
      rules: [{ apiGroups: [''], resources: ['nodes'], resourceNames: [agentId], verbs: ['get', 'delete'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: sa, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: sa },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'kube-system' }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: sa, namespace: 'kube-system', labels },
      rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: [passwordSecret], verbs: ['get', 'delete'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: sa, namespace: 'kube-system', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'kube-system' }],
    },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: job, namespace: 'kube-system', labels }, spec: { backoffLimit: 20, template } },
  ];
}

/** "revoke-<agent>-<8 hex of the pod template>", within the 63 characters a Job name may have (it becomes a label). */
function jobName(agentId: string, template: unknown): string {
  const h = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 8);
  return `${objName('revoke', agentId).slice(0, 54)}-${h}`;
}

export function revokedAgentYaml(agentId: string, kubectl: string): string {
  return toYamlStream(
    revokedAgentObjects(agentId, kubectl),
    `edgeforge: ${agentId} was revoked. Keeps its node credentials from re-registering and deletes its Node\nand node-password Secret. Keep this file: removing it lets a re-registered node be re-admitted.`,
  );
}

export function joinTokensKustomization(server: Pick<ResolvedDevice, 'id'>, files: string[]): string {
  const header = [
    `# Agents' join tokens and revocations for ${server.id}: Flux Kustomization "join-tokens" (prune: true, SOPS).`,
    '# Created by edgeforge; `edgeforge gitops --to` (with an admin key) and `edgeforge revoke` rewrite it.',
  ];
  return header.join('\n') + '\n' + toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [...files].sort() });
}
