// The layer rule of scripts/, enforced: the README's "Layout and layers" table is the one list (folder ->
// layer, lowest first); every import of every .ts/.mts/.mjs file under scripts/ (static, `export … from`,
// dynamic) must point into its own folder or a lower layer. A violation names the file and the import.
// Inside a folder the imports must not go round in a circle either (type-only imports count: a circle of types
// is still two files that cannot be read or moved apart); since folders only import downwards, that makes the
// whole import graph of scripts/ acyclic.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const SCRIPTS = path.join(ROOT, 'scripts');
const SECTION = '### Layout and layers';

/** folder -> layer, from the README table rows "| N | `folder/` | … |" under SECTION. */
export function parseLayers(readme: string): Map<string, number> {
  const start = readme.indexOf(SECTION);
  if (start < 0) throw new Error(`README.md has no "${SECTION}" section`);
  const rest = readme.slice(start + SECTION.length);
  const end = rest.search(/^#{1,3} /m);
  const layers = new Map<string, number>();
  for (const line of (end < 0 ? rest : rest.slice(0, end)).split('\n')) {
    const m = /^\|\s*(\d+)\s*\|\s*`([^`/]+)\/`\s*\|/.exec(line);
    if (!m) continue;
    if (layers.has(m[2])) throw new Error(`README.md lists scripts/${m[2]}/ twice`);
    layers.set(m[2], Number(m[1]));
  }
  return layers;
}

/** The relative specifiers a file imports (import, import type, export … from, import(), side-effect import). */
export function importsOf(text: string): string[] {
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((s) => s.startsWith('.'));
}

/** Every import from `file` (repo-relative, under scripts/) that points to a higher layer or to a peer folder. */
export function violations(file: string, specifiers: string[], layers: Map<string, number>): string[] {
  const out: string[] = [];
  const from = file.split('/')[1];
  const own = layers.get(from);
  for (const spec of specifiers) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
    if (!target.startsWith('scripts/')) continue; // outside scripts/: not a layer question
    const to = target.split('/')[1];
    if (to === from) continue;
    const theirs = layers.get(to);
    if (own === undefined) out.push(`${file}: its folder scripts/${from}/ is not in README's layer table`);
    else if (theirs === undefined) out.push(`${file}: imports "${spec}" from scripts/${to}/, which is not in README's layer table`);
    else if (theirs > own) out.push(`${file}: imports "${spec}" — ${to}/ (layer ${theirs}) is above ${from}/ (layer ${own})`);
    else if (theirs === own) out.push(`${file}: imports "${spec}" — ${to}/ and ${from}/ are peers on layer ${own}; peers do not import each other`);
  }
  return out;
}

/** The import graph: each file -> the files (of `files`) its relative imports name. */
export function importGraph(files: string[], read: (file: string) => string): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const targets = importsOf(read(f)).map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(f), s)));
    graph.set(f, [...new Set(targets.filter((t) => known.has(t)))]);
  }
  return graph;
}

/** Every circle in the graph, one per strongly connected component (Tarjan), written "a -> b -> a". */
export function circles(graph: Map<string, string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) visit(w);
      if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, low.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc = stack.splice(stack.indexOf(v));
    if (scc.length > 1 || graph.get(v)!.includes(v)) out.push(cycleThrough(graph, new Set(scc), v));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** one concrete circle from `start` back to it inside the component `scc` (breadth first: the shortest) */
function cycleThrough(graph: Map<string, string[]>, scc: Set<string>, start: string): string {
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!scc.has(w) || from.has(w)) continue;
      from.set(w, v);
      if (w === start) queue.length = 0;
      else queue.push(w);
    }
  }
  const between: string[] = [];
  for (let v = from.get(start)!; v !== start; v = from.get(v)!) between.unshift(v);
  return [start, ...between, start].join(' -> ');
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const rel = (abs: string) => path.relative(ROOT, abs).split(path.sep).join('/');
const layers = parseLayers(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
const files = walk(SCRIPTS).map(rel);
const code = files.filter((f) => /\.(ts|mts|mjs)$/.test(f));

describe('the layers of scripts/', () => {
  it('README lists every folder under scripts/ exactly once, and no folder that is gone', () => {
    const folders = readdirSync(SCRIPTS)
      .filter((n) => statSync(path.join(SCRIPTS, n)).isDirectory())
      .sort();
    expect(layers.size).toBeGreaterThan(5);
    expect([...layers.keys()].sort()).toEqual(folders);
    // every file lives in a folder (a file directly in scripts/ would have no layer)
    expect(files.filter((f) => f.split('/').length === 2)).toEqual([]);
  });

  it('no import points up a layer or across to a peer', () => {
    const found = code.flatMap((f) => violations(f, importsOf(readFileSync(path.join(ROOT, f), 'utf8')), layers));
    expect(code.length).toBeGreaterThan(100);
    expect(found).toEqual([]);
  });

  it('no circle of imports, inside a folder or across folders', () => {
    const graph = importGraph(code, (f) => readFileSync(path.join(ROOT, f), 'utf8'));
    expect([...graph.values()].flat().length).toBeGreaterThan(500);
    expect(circles(graph)).toEqual([]);
  });

  it('the circle check finds each circle once, with the files in import order', () => {
    const g = (edges: Record<string, string[]>) => new Map(Object.entries(edges));
    expect(circles(g({ a: ['b'], b: ['c'], c: [] }))).toEqual([]);
    expect(circles(g({ a: ['b'], b: ['a'], c: ['a'] }))).toEqual(['a -> b -> a']);
    expect(circles(g({ a: ['b'], b: ['c'], c: ['a', 'd'], d: ['d'] }))).toEqual(['d -> d', 'a -> b -> c -> a']);
    const text = (imports: string[]) => imports.map((i) => `import type { X } from '${i}';`).join('\n');
    const files: Record<string, string> = {
      'scripts/ui/reporter.ts': text(['./progress.ts']),
      'scripts/ui/progress.ts': text(['./reporter.ts', '../util/x.ts']),
      'scripts/util/x.ts': '',
    };
    expect(circles(importGraph(Object.keys(files), (f) => files[f]))).toEqual(['scripts/ui/reporter.ts -> scripts/ui/progress.ts -> scripts/ui/reporter.ts']);
  });

  it('the check itself sees static, type-only, re-exported and dynamic imports, and judges them by layer', () => {
    const l = new Map([
      ['util', 1],
      ['render', 5],
      ['flash', 8],
      ['provision', 8],
      ['pipeline', 9],
    ]);
    const text = [
      "import { a } from '../util/x.ts';",
      "import type { T } from '../pipeline/build.ts';",
      "export { b } from '../provision/engine.ts';",
      "const m = await import('../pipeline/write.ts');",
      "import 'node:fs';",
      "import { own } from './same.ts';",
      "// import { no } from '../pipeline/comment.ts'",
    ].join('\n');
    const specs = importsOf(text);
    expect(specs).toEqual(['../util/x.ts', '../pipeline/build.ts', '../provision/engine.ts', '../pipeline/write.ts', './same.ts']);
    const v = violations('scripts/flash/f.ts', specs, l);
    expect(v).toEqual([
      'scripts/flash/f.ts: imports "../pipeline/build.ts" — pipeline/ (layer 9) is above flash/ (layer 8)',
      'scripts/flash/f.ts: imports "../provision/engine.ts" — provision/ and flash/ are peers on layer 8; peers do not import each other',
      'scripts/flash/f.ts: imports "../pipeline/write.ts" — pipeline/ (layer 9) is above flash/ (layer 8)',
    ]);
    expect(violations('scripts/render/deep/r.ts', ['../../util/hash.ts', '../../flash/x.ts'], l)).toEqual([
      'scripts/render/deep/r.ts: imports "../../flash/x.ts" — flash/ (layer 8) is above render/ (layer 5)',
    ]);
    expect(() => parseLayers('# x\n')).toThrow(/no "### Layout and layers"/);
  });
});

describe('file size', () => {
  it('no file under scripts/ is over 500 lines', () => {
    const lines = (f: string) => readFileSync(path.join(ROOT, f), 'utf8').split('\n').length - 1;
    expect(files.filter((f) => lines(f) > 500).map((f) => `${f}: ${lines(f)} lines`)).toEqual([]);
  });
});
