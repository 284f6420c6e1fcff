// The Kubernetes API of a K3s line, as the upstream client generated from that release's OpenAPI states it
// (upstream/kubernetes/api.json, made by scripts/dev/kubernetes-api.ts from @kubernetes/client-node): which kinds a
// group/version serves, and each object type's fields. No client was generated from 1.31 or 1.35: such a minor is
// read as what both neighbours on file agree on — a kind served by the older and the newer release (Kubernetes
// does not remove a group/version and bring it back), a field both have — so it is a subset of the truth: what
// the minor added is reported missing, and what it still served but the next release removed (flowcontrol v1beta3
// on 1.31) is refused too, never the reverse. A minor outside the data on file has no API: undefined.
import { readFileSync } from 'node:fs';

export interface ApiField {
  name: string;
  /** the generator's type: string, number, boolean, Date, object, any, IntOrString, a model name, Array<T>, { [key: string]: T; } */
  type: string;
  format?: string;
}

interface ApiFile {
  format: string;
  sources: Record<string, { package: string; integrity: string; sha256: string; openapi: string }>;
  minors: Record<string, { kinds: Record<string, Record<string, [string, boolean]>>; types: Record<string, number> }>;
  shapes: ApiField[][];
}

export const KUBERNETES_API_FILE = new URL('../../upstream/kubernetes/api.json', import.meta.url);

let file: ApiFile | undefined;
function load(): ApiFile {
  file ??= JSON.parse(readFileSync(KUBERNETES_API_FILE, 'utf8')) as ApiFile;
  if (file.format !== 'edgeforge-kubernetes-api/1') throw new Error(`${KUBERNETES_API_FILE.pathname}: not edgeforge-kubernetes-api/1`);
  return file;
}

export interface KubernetesApi {
  /** the minor asked for, "1.31" */
  minor: string;
  /** the minor(s) whose client was read: "1.30", or "1.30 ∩ 1.32" for 1.31 */
  readFrom: string;
  source: string;
  /** the model type of a kind, with whether it is namespaced; undefined when the group/version does not serve it */
  kind(apiVersion: string, kind: string): { type: string; namespaced: boolean } | undefined;
  /** the group/versions that serve a kind (to suggest one) */
  servedAs(kind: string): string[];
  /** whether an API group ("" for core, "apps", "batch", "rbac.authorization.k8s.io") is Kubernetes' own */
  builtInGroup(group: string): boolean;
  fields(type: string): ApiField[] | undefined;
}

const apis = new Map<string, KubernetesApi>();

/** The API of Kubernetes 1.<minor>; undefined when no client at or above and at or below it is on file. */
export function kubernetesApi(minor: number): KubernetesApi | undefined {
  const key = `1.${minor}`;
  const cached = apis.get(key);
  if (cached) return cached;
  const f = load();
  const num = (m: string) => Number(m.split('.')[1]);
  const onFile = Object.keys(f.minors).sort((a, b) => num(a) - num(b));
  const older = onFile.filter((m) => num(m) <= minor).pop();
  const newer = onFile.find((m) => num(m) >= minor);
  if (!older || !newer) return undefined;
  const [lo, hi] = [f.minors[older], f.minors[newer]];
  const src = (m: string) => `${f.sources[m].package} (OpenAPI ${f.sources[m].openapi})`;
  const served = (gv: string, kind: string) => (hi.kinds[gv]?.[kind] ? lo.kinds[gv]?.[kind] : undefined);
  const both = new Map<string, ReturnType<KubernetesApi['fields']>>();
  const api: KubernetesApi = {
    minor: key,
    readFrom: older === newer ? older : `${older} ∩ ${newer}`,
    source: older === newer ? src(older) : `what ${src(older)} and ${src(newer)} both have (no client was generated from ${key})`,
    kind(apiVersion, kind) {
      const k = served(apiVersion, kind);
      return k ? { type: k[0], namespaced: k[1] } : undefined;
    },
    servedAs: (kind) => Object.keys(lo.kinds).filter((gv) => served(gv, kind)),
    builtInGroup: (group) => Object.keys(lo.kinds).some((gv) => (gv.includes('/') ? gv.slice(0, gv.lastIndexOf('/')) : '') === group),
    fields(type) {
      const mine = lo.types[type] === undefined ? undefined : f.shapes[lo.types[type]];
      if (!mine || older === newer) return mine;
      // a line read from two neighbours: the fields both have, worked out once per type
      if (!both.has(type)) {
        const theirs = hi.types[type] === undefined ? undefined : new Set(f.shapes[hi.types[type]].map((x) => x.name));
        both.set(type, theirs && mine.filter((x) => theirs.has(x.name)));
      }
      return both.get(type);
    },
  };
  apis.set(key, api);
  return api;
}

/** The minors with a client of their own on file (what the data was read from). */
export function kubernetesApiMinors(): string[] {
  return Object.keys(load().minors).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
}

export function kubernetesApiSources(): ApiFile['sources'] {
  return load().sources;
}
