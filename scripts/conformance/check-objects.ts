// Every Kubernetes object of a tree against what reads it: built-in kinds against the Kubernetes API of every K3s
// line the tree targets (served at all? every field known and of the right type?), custom resources against the
// CRD of the pinned release that defines them (or a CRD the tree itself ships). One finding per object and
// reason, naming the lines it applies to.
import { isDeepStrictEqual } from 'node:util';
import { checkCoreObject } from './check-core.ts';
import { checkOpenApi } from './check-openapi.ts';
import { kubernetesApi, kubernetesApiMinors, type KubernetesApi } from './kubernetes-api.ts';
import { crdVersions, type CrdVersion } from './upstream-crds.ts';
import { planWindowProblem, type PlanWindow } from './plan-window.ts';

export interface TreeObject {
  /** the file, relative to the tree's root */
  path: string;
  object: Record<string, unknown>;
  /** a kustomize patch (partial object): field names and types are checked, required fields are not */
  patch?: boolean;
}

export interface Finding {
  path: string;
  /** kind/name (namespace/name for namespaced objects when known) */
  ref: string;
  reason: string;
  /** what could not be checked (no schema on file) is a warning; everything else an error */
  warning?: boolean;
}

/** A custom resource whose CRD edgeforge has no upstream file of: not checked, said so. */
export const UNCHECKED = 'cannot be checked: ';

export interface CheckTargets {
  /** the Kubernetes minors (K3s lines) every object must be appliable on, e.g. [34, 35] */
  minors: number[];
  /** CRDs of the pinned upstream releases (upstream-crds.ts) */
  crds: CrdVersion[];
}

export const refOf = (o: Record<string, unknown>): string => {
  const m = (o.metadata ?? {}) as { name?: string; namespace?: string };
  return `${String(o.kind ?? '?')}/${m.namespace ? `${m.namespace}/` : ''}${m.name ?? '?'}`;
};

/** Kubernetes' own API groups (any version of them) — a CRD may use a .k8s.io group too (snapshot.storage.k8s.io) */
const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '');
/** config files of kustomize and SOPS, not objects any cluster receives */
const NOT_APPLIED = (apiVersion: string) => apiVersion.startsWith('kustomize.config.k8s.io/');

export function checkObjects(objects: TreeObject[], t: CheckTargets): Finding[] {
  const apis = t.minors.map((m) => kubernetesApi(m)).filter((a): a is KubernetesApi => Boolean(a));
  const crds = [...t.crds, ...objects.flatMap((o) => crdVersions(o.object, 'this tree', o.path))];
  // a line without API data is an error, never a silent pass: nothing of the tree was checked against it
  const findings: Finding[] = t.minors.filter((m) => !kubernetesApi(m)).map((m) => ({ path: '(tree)', ref: `K3s/v1.${m}`, reason: noApiReason(m) }));
  const newest = [kubernetesApi(Number(kubernetesApiMinors().pop()!.split('.')[1]))!]; // which groups are built in, when no line has data
  if (!t.minors.length) findings.push({ path: '(tree)', ref: 'K3s', reason: 'no K3s line to check against: every built-in kind went unchecked' });
  for (const o of objects) {
    const { sops: _sops, ...obj } = o.object;
    const apiVersion = String(obj.apiVersion ?? '');
    const kind = String(obj.kind ?? '');
    if (!apiVersion || !kind || NOT_APPLIED(apiVersion)) continue;
    const reasons = new Map<string, string[]>(); // reason -> the lines it holds for
    const add = (reason: string, line: string) => reasons.set(reason, [...(reasons.get(reason) ?? []), line]);
    if ((apis.length ? apis : newest).some((a) => a.builtInGroup(groupOf(apiVersion)))) {
      for (const api of apis) for (const r of builtIn(api, apiVersion, kind, obj)) add(r, api.minor);
      const second = kind === 'CustomResourceDefinition' ? secondWriter(obj, t.crds) : undefined;
      if (second) add(second, '');
    } else {
      for (const r of custom(crds, apiVersion, kind, obj, o.patch, apis[0])) add(r, '');
      if (apiVersion === 'upgrade.cattle.io/v1' && kind === 'Plan') {
        const w = (obj.spec as { window?: PlanWindow } | undefined)?.window;
        const p = w && planWindowProblem(w);
        if (p) add(`spec.window: ${p} — the controller treats a window it cannot read as never open, so this Plan would never run`, '');
      }
    }
    for (const [reason, lines] of reasons) {
      const on = lines.filter(Boolean);
      findings.push({
        path: o.path,
        ref: refOf(obj),
        reason: on.length && on.length < apis.length ? `${reason} [Kubernetes ${on.join(', ')}]` : reason,
        ...(reason.startsWith(UNCHECKED) ? { warning: true } : {}),
      });
    }
  }
  return findings;
}

function noApiReason(minor: number): string {
  const onFile = kubernetesApiMinors();
  return `no Kubernetes API of 1.${minor} is on file (upstream/kubernetes/api.json has ${onFile[0]} to ${onFile[onFile.length - 1]}): nothing in this tree was checked against the v1.${minor} line — move the ring to a line on file, or add that release's client (npm run upstream:kubernetes)`;
}

function builtIn(api: KubernetesApi, apiVersion: string, kind: string, obj: Record<string, unknown>): string[] {
  const k = api.kind(apiVersion, kind);
  if (!k) {
    const elsewhere = api.servedAs(kind);
    return [
      `Kubernetes ${api.minor} does not serve ${kind} as ${apiVersion}${elsewhere.length ? ` (it serves it as ${elsewhere.join(', ')})` : ''} — "no matches for kind" fails the whole apply (read from ${api.source})`,
    ];
  }
  const out: string[] = [];
  if (/\/v\d+(alpha|beta)\d+$/.test(apiVersion)) out.push(`${apiVersion} is a pre-release API: Kubernetes does not serve it unless a feature gate turns it on`);
  return [...out, ...checkCoreObject(api, k.type, obj)];
}

/**
 * A CRD in the tree for a kind a pinned release defines itself, with another spec: the cluster gets two writers
 * (Flux on every reconcile, the release's own installer or controller) that keep overwriting each other.
 */
function secondWriter(crd: Record<string, unknown>, pinned: CrdVersion[]): string | undefined {
  const spec = crd.spec as { group?: string; names?: { kind?: string } } | undefined;
  const theirs = pinned.filter((c) => c.group === spec?.group && c.kind === spec?.names?.kind);
  if (!theirs.length) return undefined;
  const mine = crdVersions(crd, 'this tree', '');
  const same = mine.length === theirs.length && mine.every((m) => theirs.some((x) => x.version === m.version && x.served === m.served && isDeepStrictEqual(x.schema, m.schema)));
  return same
    ? undefined
    : `this ${spec!.names!.kind} CRD differs from the one ${theirs[0].release} installs (${theirs[0].file}): two writers would keep overwriting each other — ship that release's CRD unchanged, or none`;
}

function custom(crds: CrdVersion[], apiVersion: string, kind: string, obj: Record<string, unknown>, patch: boolean | undefined, api: KubernetesApi | undefined): string[] {
  const [group, version] = apiVersion.split('/');
  const c = crds.find((x) => x.group === group && x.version === version && x.kind === kind);
  if (!c) {
    const other = crds.filter((x) => x.group === group && x.kind === kind).map((x) => `${x.version} (${x.release})`);
    return [
      other.length
        ? `${apiVersion} ${kind}: its CRD serves ${other.join(', ')} only`
        : `${UNCHECKED}no CRD for ${kind} (${apiVersion}) in this tree or edgeforge's upstream files (a cluster without that CRD refuses it)`,
    ];
  }
  if (!c.served) return [`${kind} ${version} is not served by its CRD (${c.release})`];
  const out = checkOpenApi(c.schema, obj, { skipRoot: ['apiVersion', 'kind', 'metadata'], partial: patch }).map((r) => `${r} (${c.release})`);
  if (api && obj.metadata !== undefined) out.push(...checkCoreObject(api, 'V1ObjectMeta', obj.metadata).map((r) => `metadata.${r}`));
  return out;
}
