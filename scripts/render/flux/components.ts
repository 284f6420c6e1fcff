// The Flux controllers, from a pinned release artifact: the release's install.yaml (or `flux install
// --export` output) checked against the inventory's sha256, filtered to the controllers the fleet runs and
// patched for 2 GB boards; or, online, a K3s helm-controller HelmChart with a pinned chart version.
// Pure: the caller reads the bundle file (scripts/pipeline/inputs/flux-bundle.ts) and passes its bytes.
import type { Fleet } from '../../inventory/fleet.ts';
import { sha256Hex } from '../../util/hash.ts';
import { fluxSizing, type ControllerSizing, type SizingClass } from './sizing.ts';
import { parseYamlStream, toYaml, toYamlStream } from '../yaml.ts';
import { fluxChartImages } from '../../inventory/flux-chart.ts';
import { FluxConfigError } from '../../util/errors.ts';
import { FLUX_RELEASES } from '../../inventory/flux-versions.ts';

export type FluxController = 'source-controller' | 'kustomize-controller' | 'helm-controller' | 'notification-controller';

export const DEFAULT_CONTROLLERS: FluxController[] = ['source-controller', 'kustomize-controller'];

const API_GROUP: Record<string, string> = {
  'source-controller': 'source.toolkit.fluxcd.io',
  'kustomize-controller': 'kustomize.toolkit.fluxcd.io',
  'helm-controller': 'helm.toolkit.fluxcd.io',
  'notification-controller': 'notification.toolkit.fluxcd.io',
  'image-reflector-controller': 'image.toolkit.fluxcd.io',
  'image-automation-controller': 'image.toolkit.fluxcd.io',
};
/** objects named after a controller (Deployment, ServiceAccount, Service) and extra objects a controller owns */
const OWNED_BY: Record<string, string> = {
  'webhook-receiver': 'notification-controller',
  'allow-webhooks': 'notification-controller',
  ...Object.fromEntries(Object.keys(API_GROUP).map((c) => [c, c])),
};

/** PVC holding source-controller's artifacts, so a reboot while offline still has the last revision. */
export const SOURCE_PVC = 'source-controller-data';
/** hostPath variant (when the fleet disables K3s's local-storage): on the K3s data dir, i.e. the encrypted volume. */
export const SOURCE_HOSTPATH = '/var/lib/rancher/k3s/storage/edgeforge-flux-source-controller';

export function fluxControllers(fleet: Pick<Fleet, 'gitops'>): FluxController[] {
  const c = (fleet.gitops.flux.controllers ?? DEFAULT_CONTROLLERS) as FluxController[];
  for (const need of DEFAULT_CONTROLLERS) {
    if (!c.includes(need)) throw new FluxConfigError(`gitops.flux.controllers must include ${need}: devices pull (source-controller) and apply (kustomize-controller) their state with it`);
  }
  // stable order whatever the inventory wrote
  return (['source-controller', 'kustomize-controller', 'helm-controller', 'notification-controller'] as FluxController[]).filter((x) => c.includes(x));
}

export type StorageMode = 'pvc' | 'hostPath';

/** PVC on K3s's local-path provisioner unless the fleet disables local-storage; then a hostPath. */
export function fluxStorageMode(fleet: Pick<Fleet, 'k3s'>): StorageMode {
  return fleet.k3s.disable.includes('local-storage') ? 'hostPath' : 'pvc';
}

/** Why this fleet cannot render Flux components yet, or undefined. For validate/plan to report early. */
export function fluxInstallProblem(fleet: Pick<Fleet, 'gitops'>): string | undefined {
  if (!fleet.gitops.flux.install) {
    return (
      'gitops.flux.install is not set: edgeforge never downloads Flux at build time, so pin it either as a local bundle ' +
      '({mode: bundle, file: bundles/flux/install.yaml, sha256: …} — the Flux release install.yaml) or as an online ' +
      'HelmChart ({mode: helm, chartVersion: …, repo: https://fluxcd-community.github.io/helm-charts})'
    );
  }
  return undefined;
}

export interface FluxBundleInput {
  /** bytes of gitops.flux.install.file (bundle mode) */
  bundle?: Uint8Array;
  /** bytes of gitops.oci.caFile (OCI transport): the registry CA devices pin */
  registryCa?: Uint8Array;
}

/** Check the bundle bytes against the inventory pin and parse them. Errors say what to do. */
export function readFluxBundle(fleet: Pick<Fleet, 'gitops'>, bytes: Uint8Array | undefined): Record<string, unknown>[] {
  const inst = fleet.gitops.flux.install;
  if (!inst || inst.mode !== 'bundle') throw new FluxConfigError('readFluxBundle: gitops.flux.install is not a bundle');
  if (!bytes) throw new FluxConfigError(`Flux bundle ${inst.file}: not read (the build must pass its bytes)`);
  const got = sha256Hex(bytes);
  if (got !== inst.sha256) {
    throw new FluxConfigError(
      `Flux bundle ${inst.file}: sha256 is ${got} but the inventory pins ${inst.sha256} (gitops.flux.install.sha256). ` +
        `The file is not the pinned Flux ${fleet.gitops.flux.version} release: restore it, or if you upgraded Flux on purpose, update the pin.`,
    );
  }
  const docs = parseYamlStream(Buffer.from(bytes).toString('utf8'), `Flux bundle ${inst.file}`);
  const versions = new Set(docs.map((d) => (meta(d).labels as Record<string, string> | undefined)?.['app.kubernetes.io/version']).filter(Boolean));
  if (versions.size && !versions.has(fleet.gitops.flux.version)) {
    throw new FluxConfigError(`Flux bundle ${inst.file}: is Flux ${[...versions].join(', ')}, but gitops.flux.version is ${fleet.gitops.flux.version}: make them agree`);
  }
  for (const c of DEFAULT_CONTROLLERS) {
    if (!docs.some((d) => d.kind === 'Deployment' && meta(d).name === c)) {
      throw new FluxConfigError(`Flux bundle ${inst.file}: has no ${c} Deployment; use the release's install.yaml or \`flux install --export\` output`);
    }
  }
  return docs;
}

function meta(d: Record<string, unknown>): Record<string, unknown> {
  return (d.metadata ?? {}) as Record<string, unknown>;
}

function keep(d: Record<string, unknown>, selected: Set<string>): boolean {
  if (d.kind === 'CustomResourceDefinition') {
    const group = (d.spec as { group?: string } | undefined)?.group;
    const owners = Object.entries(API_GROUP)
      .filter(([, g]) => g === group)
      .map(([c]) => c);
    return owners.length === 0 || owners.some((c) => selected.has(c));
  }
  const owner = OWNED_BY[String(meta(d).name)];
  if (owner && ['Deployment', 'ServiceAccount', 'Service', 'NetworkPolicy'].includes(String(d.kind))) return selected.has(owner);
  return true;
}

const PRUNE_DISABLED = { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' };

function setEnv(env: { name: string; value?: string }[], name: string, value: string): void {
  const i = env.findIndex((e) => e.name === name);
  const entry = { name, value };
  if (i >= 0) env[i] = entry;
  else env.push(entry);
}

function controllerArgs(name: FluxController, args: string[], s: ControllerSizing, selected: Set<string>): string[] {
  let out = args.filter((a) => !a.startsWith('--enable-leader-election') && !a.startsWith('--concurrent='));
  // without notification-controller, event posts would fail and retry on every reconcile
  if (!selected.has('notification-controller')) out = out.filter((a) => !a.startsWith('--events-addr'));
  // one replica on one node: leader election would only renew a Lease every few seconds (SQLite writes on the SD card)
  out.push('--enable-leader-election=false', `--concurrent=${s.concurrent}`);
  if (name === 'kustomize-controller' && !out.some((a) => a.startsWith('--requeue-dependency'))) out.push('--requeue-dependency=30s');
  return out;
}

function resources(s: ControllerSizing) {
  return {
    requests: { cpu: s.cpuRequest, memory: `${s.memoryRequestMi}Mi` },
    limits: { cpu: s.cpuLimit, memory: `${s.memoryLimitMi}Mi` },
  };
}

function patchDeployment(d: Record<string, unknown>, cls: SizingClass, storage: StorageMode, selected: Set<string>): void {
  const name = meta(d).name as FluxController;
  const sz = fluxSizing(cls);
  const s = name === 'source-controller' ? sz.source : name === 'kustomize-controller' ? sz.kustomize : undefined;
  const spec = d.spec as Record<string, any>;
  // Recreate: no second pod during an upgrade (no leader election; source-controller's volume is RWO)
  spec.strategy = { type: 'Recreate' };
  const pod = spec.template.spec as Record<string, any>;
  const c = (pod.containers as Record<string, any>[]).find((x) => x.name === 'manager') ?? pod.containers[0];
  if (s) {
    c.args = controllerArgs(name, c.args ?? [], s, selected);
    c.resources = resources(s);
    c.env = c.env ?? [];
    setEnv(c.env, 'GOMEMLIMIT', `${s.goMemLimitMi}MiB`);
    if (s.goMaxProcs) setEnv(c.env, 'GOMAXPROCS', String(s.goMaxProcs));
  } else if (!selected.has('notification-controller')) {
    c.args = (c.args ?? []).filter((a: string) => !a.startsWith('--events-addr'));
  }
  if (name === 'source-controller') {
    const vols = (pod.volumes ?? []) as Record<string, any>[];
    const dataMount = (c.volumeMounts ?? []).find((m: Record<string, any>) => m.mountPath === '/data');
    const volName = dataMount?.name ?? 'data';
    const vol = storage === 'pvc' ? { name: volName, persistentVolumeClaim: { claimName: SOURCE_PVC } } : { name: volName, hostPath: { path: SOURCE_HOSTPATH, type: 'DirectoryOrCreate' } };
    const i = vols.findIndex((v) => v.name === volName);
    if (i >= 0) vols[i] = vol;
    else vols.push(vol);
    pod.volumes = vols;
    if (!dataMount) c.volumeMounts = [...(c.volumeMounts ?? []), { name: volName, mountPath: '/data' }];
    // a hostPath exists on one node only: keep the pod on the server that owns it
    if (storage === 'hostPath') pod.nodeSelector = { ...(pod.nodeSelector ?? {}), 'node-role.kubernetes.io/control-plane': 'true' };
  }
}

export function sourcePvc(): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: SOURCE_PVC, namespace: 'flux-system', labels: { 'app.kubernetes.io/part-of': 'flux', 'app.kubernetes.io/managed-by': 'edgeforge' }, annotations: { ...PRUNE_DISABLED } },
    // local-path does not enforce the size; the artifact store holds the last 2 revisions of one repository
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-path', resources: { requests: { storage: '1Gi' } } },
  };
}

/** Bundle mode: the filtered, patched controller manifests (CRDs, RBAC, Deployments, Services, PVC). */
export function fluxComponentsFromBundle(fleet: Pick<Fleet, 'gitops' | 'k3s'>, cls: SizingClass, bundle: Uint8Array | undefined): Record<string, unknown>[] {
  const docs = structuredClone(readFluxBundle(fleet, bundle));
  const selected = new Set<string>(fluxControllers(fleet));
  const storage = fluxStorageMode(fleet);
  const out: Record<string, unknown>[] = [];
  for (const d of docs) {
    if (!keep(d, selected)) continue;
    const m = meta(d);
    // removing these from Git must never delete Flux (and with it every workload) from a whole fleet
    if (d.kind === 'Namespace' || d.kind === 'CustomResourceDefinition') m.annotations = { ...((m.annotations as object) ?? {}), ...PRUNE_DISABLED };
    if (d.kind === 'Deployment') patchDeployment(d, cls, storage, selected);
    out.push(d);
    if (d.kind === 'Namespace' && m.name === 'flux-system' && storage === 'pvc') out.push(sourcePvc());
  }
  if (!out.some((d) => d.kind === 'Namespace' && meta(d).name === 'flux-system')) throw new FluxConfigError('Flux bundle: has no flux-system Namespace');
  return out;
}

/** Helm mode: the controller images the inventory's pins make the chart run (empty in bundle mode). */
export function fluxHelmImages(fleet: Pick<Fleet, 'gitops' | 'k3s'>): string[] {
  return fleet.gitops.flux.install?.mode === 'helm' ? fluxChartImages(helmValues(fleet, 'small')) : [];
}

function helmValues(fleet: Pick<Fleet, 'gitops' | 'k3s'>, cls: SizingClass): Record<string, unknown> {
  const selected = new Set<string>(fluxControllers(fleet));
  const sz = fluxSizing(cls);
  const storage = fluxStorageMode(fleet);
  const env = (s: ControllerSizing) => [{ name: 'GOMEMLIMIT', value: `${s.goMemLimitMi}MiB` }, ...(s.goMaxProcs ? [{ name: 'GOMAXPROCS', value: String(s.goMaxProcs) }] : [])];
  // the chart hard-codes an emptyDir at /data; a second volume and a later --storage-path (last flag wins) move the store
  // the chart version that ships the pinned release is not always known (inventory/flux-versions.ts): pin the
  // controllers to the release's own tags, so the chart of the same minor line runs the pinned release
  const rel = FLUX_RELEASES[fleet.gitops.flux.version];
  const persistent =
    storage === 'pvc' ? { name: 'persistent-data', persistentVolumeClaim: { claimName: SOURCE_PVC } } : { name: 'persistent-data', hostPath: { path: SOURCE_HOSTPATH, type: 'DirectoryOrCreate' } };
  return {
    installCRDs: true,
    watchAllNamespaces: true,
    policies: { create: true },
    helmController: { create: selected.has('helm-controller'), ...(rel && selected.has('helm-controller') ? { tag: rel.helmController } : {}) },
    notificationController: { create: selected.has('notification-controller'), ...(rel && selected.has('notification-controller') ? { tag: rel.notificationController } : {}) },
    imageAutomationController: { create: false },
    imageReflectionController: { create: false },
    sourceController: {
      ...(rel ? { tag: rel.sourceController } : {}),
      resources: resources(sz.source),
      extraEnv: env(sz.source),
      container: { additionalArgs: ['--enable-leader-election=false', `--concurrent=${sz.source.concurrent}`, '--storage-path=/data-persistent'] },
      volumes: [persistent],
      volumeMounts: [{ name: 'persistent-data', mountPath: '/data-persistent' }],
      ...(storage === 'hostPath' ? { nodeSelector: { 'node-role.kubernetes.io/control-plane': 'true' } } : {}),
    },
    kustomizeController: {
      ...(rel ? { tag: rel.kustomizeController } : {}),
      resources: resources(sz.kustomize),
      extraEnv: env(sz.kustomize),
      container: { additionalArgs: ['--enable-leader-election=false', `--concurrent=${sz.kustomize.concurrent}`, '--requeue-dependency=30s'] },
    },
    extraObjects: storage === 'pvc' ? [sourcePvc()] : [],
  };
}

/** Helm mode: one K3s HelmChart; K3s's helm-controller installs the pinned chart at first boot (online). */
export function fluxHelmChart(fleet: Pick<Fleet, 'gitops' | 'k3s'>, cls: SizingClass): Record<string, unknown> {
  const inst = fleet.gitops.flux.install;
  if (!inst || inst.mode !== 'helm') throw new FluxConfigError('fluxHelmChart: gitops.flux.install is not helm');
  const oci = inst.repo.startsWith('oci://');
  const chartRef = oci ? (inst.repo.replace(/\/+$/, '').endsWith('/flux2') ? inst.repo.replace(/\/+$/, '') : `${inst.repo.replace(/\/+$/, '')}/flux2`) : 'flux2';
  return {
    apiVersion: 'helm.cattle.io/v1',
    kind: 'HelmChart',
    metadata: { name: 'flux2', namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': 'edgeforge' } },
    spec: {
      ...(oci ? {} : { repo: inst.repo }),
      chart: chartRef,
      version: inst.chartVersion,
      targetNamespace: 'flux-system',
      createNamespace: true,
      valuesContent: toYaml(helmValues(fleet, cls)),
    },
  };
}

/** The controller objects for one sizing class, whichever install mode the fleet pins. */
export function fluxComponents(fleet: Pick<Fleet, 'gitops' | 'k3s'>, cls: SizingClass, input: FluxBundleInput = {}): Record<string, unknown>[] {
  const problem = fluxInstallProblem(fleet);
  if (problem) throw new FluxConfigError(problem);
  const inst = fleet.gitops.flux.install!;
  return inst.mode === 'bundle' ? fluxComponentsFromBundle(fleet, cls, input.bundle) : [fluxHelmChart(fleet, cls)];
}

// The components are the same for every device of a sizing class: a fleet of 10,000 must not parse, patch and
// serialise a ~1 MB install.yaml 10,000 times. Keyed by the fleet's gitops/k3s objects and the bundle bytes
// (object identity), so a changed input is a new key; the cached value is a pure function of the key.
const componentsCache = new WeakMap<object, WeakMap<object, Map<string, string>>>();
const NO_BUNDLE = {};

/** The components as a YAML stream (cached per fleet, bundle and class), optionally under a comment header. */
export function fluxComponentsYaml(fleet: Pick<Fleet, 'gitops' | 'k3s'>, cls: SizingClass, input: FluxBundleInput = {}, header?: string): string {
  let byBundle = componentsCache.get(fleet.gitops);
  if (!byBundle) componentsCache.set(fleet.gitops, (byBundle = new WeakMap()));
  const bkey = input.bundle ?? NO_BUNDLE;
  let byClass = byBundle.get(bkey);
  if (!byClass) byBundle.set(bkey, (byClass = new Map()));
  const key = `${cls}|${fleet.k3s.disable.join(',')}`;
  let body = byClass.get(key);
  if (body === undefined) byClass.set(key, (body = toYamlStream(fluxComponents(fleet, cls, input))));
  return (header ? toYamlStream([], header) : '') + body;
}
