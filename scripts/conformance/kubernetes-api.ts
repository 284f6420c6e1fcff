// The Kubernetes API of a K3s line, as the upstream client generated from that release's OpenAPI states it
// (upstream/kubernetes/api.json, made by scripts/dev/kubernetes-api.ts from @kubernetes/client-node): which kinds a
// group/version serves, and each object type's fields. A minor without its own client release is read with the
// nearest older one: a strict subset (a field or kind new in that minor is reported as missing, never the reverse).
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
  /** the minor whose client was read ("1.30" for 1.31) */
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

/** The API of Kubernetes 1.<minor>; undefined when no client at or below it is on file. */
export function kubernetesApi(minor: number): KubernetesApi | undefined {
  const key = `1.${minor}`;
  const cached = apis.get(key);
  if (cached) return cached;
  const f = load();
  const readFrom = Object.keys(f.minors)
    .filter((m) => Number(m.split('.')[1]) <= minor)
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .pop();
  if (!readFrom) return undefined;
  const m = f.minors[readFrom];
  const api: KubernetesApi = {
    minor: key,
    readFrom,
    source: `${f.sources[readFrom].package} (OpenAPI ${f.sources[readFrom].openapi})`,
    kind(apiVersion, kind) {
      const k = m.kinds[apiVersion]?.[kind];
      return k ? { type: k[0], namespaced: k[1] } : undefined;
    },
    servedAs: (kind) => Object.keys(m.kinds).filter((gv) => m.kinds[gv][kind]),
    builtInGroup: (group) => Object.keys(m.kinds).some((gv) => (gv.includes('/') ? gv.slice(0, gv.lastIndexOf('/')) : '') === group),
    fields: (type) => (m.types[type] === undefined ? undefined : f.shapes[m.types[type]]),
  };
  apis.set(key, api);
  return api;
}

/** The minors with a client of their own on file (what the data was read from). */
export function kubernetesApiMinors(): string[] {
  return Object.keys(load().minors);
}

export function kubernetesApiSources(): ApiFile['sources'] {
  return load().sources;
}
