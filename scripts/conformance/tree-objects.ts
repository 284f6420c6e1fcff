// A tree of YAML files as the objects in it: every document with an apiVersion and a kind, and which files are
// kustomize patches (partial objects) rather than resources. Pure: the files come in as bytes.
import path from 'node:path';
import YAML from 'yaml';
import type { TreeObject } from './check-objects.ts';

export interface TreeFile {
  path: string;
  bytes: Uint8Array;
}

export interface TreeRead {
  objects: TreeObject[];
  /** files that are not YAML a cluster or kustomize could read */
  unreadable: { path: string; reason: string }[];
}

const isYaml = (p: string) => /\.ya?ml$/.test(p) && !p.endsWith('.sops.yaml');

/** Parsed documents by file text, shared between two reads of trees that are mostly the same (before, after). */
export type ParseCache = Map<string, Record<string, unknown>[] | { error: string }>;

function parse(text: string): Record<string, unknown>[] | { error: string } {
  const parsed = YAML.parseAllDocuments(text);
  const bad = parsed.find((d) => d.errors.length);
  if (bad) return { error: bad.errors[0].message.split('\n')[0] };
  return parsed.map((d) => d.toJS() as unknown).filter((o): o is Record<string, unknown> => Boolean(o) && typeof o === 'object' && !Array.isArray(o));
}

export function objectsOfTree(files: TreeFile[], cache: ParseCache = new Map()): TreeRead {
  const docs = new Map<string, Record<string, unknown>[]>();
  const unreadable: TreeRead['unreadable'] = [];
  for (const f of files.filter((x) => isYaml(x.path))) {
    const text = Buffer.from(f.bytes).toString('utf8');
    let got = cache.get(text);
    if (!got) cache.set(text, (got = parse(text)));
    if ('error' in got) unreadable.push({ path: f.path, reason: got.error });
    else docs.set(f.path, got);
  }
  const patches = new Set<string>();
  for (const [p, list] of docs) {
    for (const k of list.filter((o) => String(o.apiVersion ?? '').startsWith('kustomize.config.k8s.io/'))) {
      const entries = [...((k.patches as { path?: string }[] | undefined) ?? []).map((x) => x?.path), ...((k.patchesStrategicMerge as string[] | undefined) ?? [])];
      for (const e of entries) if (typeof e === 'string') patches.add(path.posix.normalize(path.posix.join(path.posix.dirname(p), e)));
    }
  }
  const objects: TreeObject[] = [];
  for (const [p, list] of docs) for (const object of list) if (object.apiVersion && object.kind) objects.push({ path: p, object, ...(patches.has(p) ? { patch: true } : {}) });
  return { objects, unreadable };
}
