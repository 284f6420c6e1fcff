// Tree N+1 applied on a cluster that applied tree N: an object that keeps its name but changes a field the API
// server never lets change (a Job's pod template, a selector, a binding's roleRef, the data of an immutable
// Secret) makes Flux's apply fail on every reconcile — and Flux prunes only after an apply succeeds, so
// everything else in that Kustomization is stuck too. Such a change needs a new name, or Flux's force annotation.
import { isDeepStrictEqual } from 'node:util';
import { refOf, type Finding, type TreeObject } from './check-objects.ts';

export const FLUX_FORCE = 'kustomize.toolkit.fluxcd.io/force';

type Obj = Record<string, unknown>;
const at = (o: Obj, p: string): unknown => p.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Obj)[k] : undefined), o);

/** Fields the API server refuses to change, per group/kind ("" is the core group). */
const IMMUTABLE: Record<string, string[]> = {
  'batch/Job': ['spec.template', 'spec.selector', 'spec.completions', 'spec.completionMode', 'spec.manualSelector'],
  'apps/Deployment': ['spec.selector'],
  'apps/ReplicaSet': ['spec.selector'],
  'apps/DaemonSet': ['spec.selector'],
  'apps/StatefulSet': ['spec.selector', 'spec.serviceName', 'spec.volumeClaimTemplates', 'spec.podManagementPolicy'],
  'rbac.authorization.k8s.io/RoleBinding': ['roleRef'],
  'rbac.authorization.k8s.io/ClusterRoleBinding': ['roleRef'],
  'apiextensions.k8s.io/CustomResourceDefinition': ['spec.scope'],
  'storage.k8s.io/StorageClass': ['provisioner', 'parameters', 'reclaimPolicy', 'volumeBindingMode'],
  '/Secret': ['type'],
  '/Service': ['spec.clusterIP'],
};

const groupKind = (o: Obj) => {
  const av = String(o.apiVersion ?? '');
  return `${av.includes('/') ? av.split('/')[0] : ''}/${String(o.kind ?? '')}`;
};
const keyOf = (t: TreeObject) => {
  const m = (t.object.metadata ?? {}) as { name?: string; namespace?: string };
  return `${t.path}\u0000${groupKind(t.object)}\u0000${m.namespace ?? ''}\u0000${m.name ?? ''}`;
};

/** The fields of `next` that tree N's object had with another value and the API server would refuse to change. */
export function immutableChanges(prev: Obj, next: Obj): string[] {
  const gk = groupKind(next);
  const out = (IMMUTABLE[gk] ?? []).filter((p) => at(prev, p) !== undefined && !isDeepStrictEqual(at(prev, p), at(next, p)));
  // an immutable Secret or ConfigMap keeps its data, and stays immutable
  if ((gk === '/Secret' || gk === '/ConfigMap') && prev.immutable === true) {
    for (const p of ['data', 'stringData', 'binaryData']) if (!isDeepStrictEqual(prev[p], next[p])) out.push(p);
    if (next.immutable !== true) out.push('immutable');
  }
  // a claim's spec may only grow its storage request
  if (gk === '/PersistentVolumeClaim') {
    const strip = (o: Obj) => ({ ...(o.spec as Obj), resources: { ...((at(o, 'spec.resources') as Obj) ?? {}), requests: undefined } });
    if (!isDeepStrictEqual(strip(prev), strip(next))) out.push('spec (other than resources.requests)');
  }
  return out;
}

export function checkTransition(prev: TreeObject[], next: TreeObject[]): Finding[] {
  const before = new Map(prev.map((t) => [keyOf(t), t]));
  const findings: Finding[] = [];
  for (const t of next) {
    if (t.patch) continue;
    const p = before.get(keyOf(t));
    if (!p) continue;
    const forced = (at(t.object, `metadata.annotations`) as Record<string, string> | undefined)?.[FLUX_FORCE] === 'enabled';
    const changed = immutableChanges(p.object, t.object);
    if (changed.length && !forced)
      findings.push({
        path: t.path,
        ref: refOf(t.object),
        reason: `${changed.join(', ')} changes under the same name, and the API server refuses to change ${changed.length > 1 ? 'them' : 'it'} on an existing ${String(t.object.kind)}: Flux's apply would fail on every reconcile (give the object a new name, or annotate it ${FLUX_FORCE}: enabled so Flux recreates it)`,
      });
  }
  return findings;
}
