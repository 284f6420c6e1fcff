// `npm run upstream:kubernetes` — regenerates upstream/kubernetes/api.json: the Kubernetes API of each K3s line
// edgeforge targets, read from the official Kubernetes JavaScript client (@kubernetes/client-node), which is
// generated from each Kubernetes release's OpenAPI document. Per Kubernetes minor it keeps
//   - the kinds each group/version serves (the client's create/createNamespaced methods and the body type they take),
//   - every object type's fields (name, type, format: the generator's attributeTypeMap),
// so `edgeforge gitops --check` can refuse a kind a K3s line lacks and a field a type does not have, offline.
// Run by a developer (it needs the npm registry); tests only read the file. Each source is recorded with the
// tarball's integrity as the registry states it and the sha256 of the bytes read.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Kubernetes minor -> the client release generated from it (its files' header names the OpenAPI document). None was
 * generated from 1.31 or 1.35 (1.0.0 and 1.1.x: v1.32.0; 1.2.0: v1.33.0; 2.0.x: release-1.36): kubernetes-api.ts
 * reads those minors from their neighbours.
 */
const SOURCES: Record<string, string> = {
  '1.28': '0.20.0',
  '1.29': '0.21.0',
  '1.30': '0.22.3',
  '1.32': '1.1.2',
  '1.33': '1.3.0',
  '1.34': '1.4.0',
  '1.36': '2.0.1',
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = path.join(root, 'upstream/kubernetes/api.json');

/** The API group of a client API class prefix: "rbacAuthorization" -> rbac.authorization.k8s.io, "apps" -> apps. */
function groupOf(prefix: string): string {
  const p = prefix[0].toLowerCase() + prefix.slice(1);
  if (p === 'core') return '';
  const dotted = p.replace(/([A-Z])/g, '.$1').toLowerCase();
  return ['apps', 'batch', 'autoscaling', 'policy'].includes(dotted) ? dotted : `${dotted}.k8s.io`;
}

interface Field {
  name: string;
  type: string;
  format?: string;
}

function modelsOf(dir: string): Map<string, Field[]> {
  const out = new Map<string, Field[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.js'))) {
    const text = readFileSync(path.join(dir, f), 'utf8');
    const m = /(\w+)\.attributeTypeMap = (\[[\s\S]*?\n\]);/.exec(text);
    if (!m) continue;
    const fields = (JSON.parse(m[2]) as { baseName: string; type: string; format?: string }[]).map((a) => ({ name: a.baseName, type: a.type, ...(a.format ? { format: a.format } : {}) }));
    out.set(m[1], fields);
  }
  return out;
}

/**
 * The API classes the release's generated index lists (0.x: gen/api/apis.d.ts `APIS`; 1.x on: gen/index.d.ts). The
 * 1.x packages also carry stale files of group/versions an older release served and this one no longer does
 * (flowcontrol.apiserver.k8s.io/v1beta3 in the 1.32 client, removed in Kubernetes 1.32): only the index says
 * what the release's OpenAPI document has.
 */
function listedApis(gen: string): Set<string> {
  const apis = path.join(gen, 'api/apis.d.ts');
  if (existsSync(apis)) {
    const list = /export declare const APIS: \(([^)]*)\)\[\]/.exec(readFileSync(apis, 'utf8'))?.[1];
    if (!list) throw new Error(`${apis}: no APIS list`);
    return new Set([...list.matchAll(/typeof (\w+Api)\b/g)].map((m) => m[1]));
  }
  const index = readFileSync(path.join(gen, 'index.d.ts'), 'utf8');
  return new Set([...index.matchAll(/\bObject(\w+Api) as \1\b/g)].map((m) => m[1]));
}

/** group/version -> kind -> [model type, namespaced] from the listed API classes' create methods. */
function kindsOf(dir: string, listed: Set<string>): Record<string, Record<string, [string, boolean]>> {
  const out: Record<string, Record<string, [string, boolean]>> = {};
  for (const f of readdirSync(dir).filter((n) => /^[a-zA-Z]+V\d+(alpha\d+|beta\d+)?Api\.d\.ts$/.test(n))) {
    if (!listed.has(f[0].toUpperCase() + f.slice(1, -'.d.ts'.length))) continue;
    const m = /^([a-zA-Z]+?)(V\d+(?:alpha\d+|beta\d+)?)Api\.d\.ts$/.exec(f)!;
    const group = groupOf(m[1]);
    const gv = group ? `${group}/${m[2].toLowerCase()}` : m[2].toLowerCase();
    const text = readFileSync(path.join(dir, f), 'utf8');
    for (const c of text.matchAll(/\bcreate(Namespaced)?(\w+)\((?:namespace: string, )?body: (\w+)/g)) {
      const [, ns, kind, type] = c;
      // subresources (pods/eviction, serviceaccounts/token) post another kind: keep only create<Kind>(body: <Version><Kind>)
      if (!type.endsWith(kind) || !/^(\w+?V\d+(alpha\d+|beta\d+)?|V\d+(alpha\d+|beta\d+)?)$/.test(type.slice(0, -kind.length))) continue;
      (out[gv] ??= {})[kind] = [type, Boolean(ns)];
    }
  }
  return out;
}

function main(): void {
  const work = mkdtempSync(path.join(tmpdir(), 'edgeforge-k8s-api-'));
  const sources: Record<string, unknown> = {};
  const minors: Record<string, { kinds: Record<string, Record<string, [string, boolean]>>; types: Record<string, number> }> = {};
  const shapes: Field[][] = [];
  const shapeIndex = new Map<string, number>();
  try {
    for (const [minor, version] of Object.entries(SOURCES)) {
      const spec = `@kubernetes/client-node@${version}`;
      const packed = JSON.parse(execFileSync('npm', ['pack', spec, '--json', '--pack-destination', work], { encoding: 'utf8' })) as { filename: string; integrity: string }[];
      const tgz = path.join(work, packed[0].filename);
      const dir = path.join(work, minor);
      execFileSync('mkdir', ['-p', dir]);
      execFileSync('tar', ['xzf', tgz, '-C', dir]);
      const gen = path.join(dir, 'package/dist/gen');
      const modelDir = path.join(gen, readdirSync(gen).includes('models') ? 'models' : 'model');
      const apiDir = path.join(gen, readdirSync(gen).includes('apis') ? 'apis' : 'api');
      const header = /OpenAPI (?:spec version|document): (\S+)/.exec(
        readFileSync(
          path.join(
            modelDir,
            readdirSync(modelDir).find((n) => /^v1JobSpec\.js$/i.test(n))!,
          ),
          'utf8',
        ),
      )?.[1];
      sources[minor] = { package: spec, integrity: packed[0].integrity, sha256: createHash('sha256').update(readFileSync(tgz)).digest('hex'), openapi: header };
      const types: Record<string, number> = {};
      for (const [name, fields] of modelsOf(modelDir)) {
        const key = JSON.stringify(fields);
        let i = shapeIndex.get(key);
        if (i === undefined) shapeIndex.set(key, (i = shapes.push(fields) - 1));
        types[name] = i;
      }
      minors[minor] = { kinds: kindsOf(apiDir, listedApis(gen)), types };
      console.error(`${minor}: ${spec} (${header}): ${Object.keys(types).length} types, ${Object.values(minors[minor].kinds).reduce((a, k) => a + Object.keys(k).length, 0)} kinds`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const doc = {
    format: 'edgeforge-kubernetes-api/1',
    about:
      "The Kubernetes API per minor, read from @kubernetes/client-node (generated from each release's OpenAPI): the API classes its generated index lists. No client exists for 1.31 or 1.35. Regenerate: npm run upstream:kubernetes",
    sources,
    minors,
    shapes,
  };
  writeFileSync(OUT, JSON.stringify(doc) + '\n');
  console.error(`wrote ${path.relative(root, OUT)} (${(readFileSync(OUT).length / 1024).toFixed(0)} KiB, ${shapes.length} distinct shapes)`);
}

main();
