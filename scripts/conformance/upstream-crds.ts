// The CRDs of the pinned upstream releases, kept as files read from the upstream repositories (upstream/crds/):
// each starts with a header naming the repository, path, tag and the sha256 of the bytes after the header, which
// is checked whenever the file is read. Nothing here is written from memory: a CRD edgeforge has no file for is
// reported as such by the checks, never guessed.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import YAML from 'yaml';
import type { OpenApiSchema } from './check-openapi.ts';

export const UPSTREAM_CRDS_DIR = fileURLToPath(new URL('../../upstream/crds', import.meta.url));
const HEADER_END = '# --- end of edgeforge header ---';

export interface UpstreamSource {
  repository: string;
  path: string;
  tag: string;
  commit?: string;
  sha256: string;
  /** how the tag was established, when it is not the file's own statement */
  note?: string;
}

export interface CrdVersion {
  group: string;
  kind: string;
  version: string;
  served: boolean;
  schema: OpenApiSchema;
  /** "project@release", e.g. system-upgrade-controller@v0.16.1 */
  release: string;
  file: string;
}

/** Split a fixture into its header fields and the upstream bytes; throws when the sha256 does not match. */
export function readUpstreamFile(file: string): { source: UpstreamSource; body: Buffer } {
  const all = readFileSync(file);
  const text = all.toString('utf8');
  const end = text.indexOf(HEADER_END + '\n');
  if (end < 0) throw new Error(`${file}: no edgeforge header (upstream fixtures start with one, ending "${HEADER_END}")`);
  const fields = Object.fromEntries(
    text
      .slice(0, end)
      .split('\n')
      .map((l) => /^# ([a-z0-9]+): (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => Boolean(m))
      .map((m) => [m[1], m[2].trim()]),
  ) as Record<string, string>;
  const body = all.subarray(Buffer.byteLength(text.slice(0, end + HEADER_END.length + 1)));
  const got = createHash('sha256').update(body).digest('hex');
  for (const k of ['repository', 'path', 'tag', 'sha256']) if (!fields[k]) throw new Error(`${file}: header lacks "${k}"`);
  if (got !== fields.sha256) throw new Error(`${file}: the upstream bytes hash to ${got}, the header says ${fields.sha256} (the file was edited)`);
  return { source: { repository: fields.repository, path: fields.path, tag: fields.tag, commit: fields.commit, sha256: fields.sha256, note: fields.note }, body };
}

/** CRD versions of one fixture directory ("system-upgrade-controller@v0.16.1"). */
export function crdsOfRelease(release: string, dir = UPSTREAM_CRDS_DIR): CrdVersion[] {
  const folder = path.join(dir, release);
  const out: CrdVersion[] = [];
  let names: string[];
  try {
    names = readdirSync(folder).filter((n) => n.endsWith('.yaml'));
  } catch {
    return [];
  }
  for (const n of names.sort()) {
    const file = path.join(folder, n);
    const { body } = readUpstreamFile(file);
    for (const doc of YAML.parseAllDocuments(body.toString('utf8'))) {
      out.push(...crdVersions(doc.toJS(), release, path.relative(path.dirname(UPSTREAM_CRDS_DIR), file)));
    }
  }
  return out;
}

/** The versions a CustomResourceDefinition object defines, with their schemas. */
export function crdVersions(crd: unknown, release: string, file: string): CrdVersion[] {
  const c = crd as { kind?: string; spec?: { group: string; names: { kind: string }; versions?: { name: string; served?: boolean; schema?: { openAPIV3Schema?: OpenApiSchema } }[] } };
  if (c?.kind !== 'CustomResourceDefinition' || !c.spec) return [];
  return (c.spec.versions ?? []).map((v) => ({ group: c.spec!.group, kind: c.spec!.names.kind, version: v.name, served: v.served !== false, schema: v.schema?.openAPIV3Schema ?? {}, release, file }));
}

/** Every fixture release on file, "project@tag". */
export function upstreamReleases(dir = UPSTREAM_CRDS_DIR): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}
