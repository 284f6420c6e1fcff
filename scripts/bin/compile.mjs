#!/usr/bin/env node
// `npm run compile`, and npm's `prepare` (so `npm ci` runs it): the TypeScript under scripts/ -> plain JavaScript
// in dist/ (git-ignored), which scripts/bin/edgeforge.mjs runs instead of compiling the sources through tsx on
// every start (2 s -> 0.1 s). Layout: scripts/X/y.ts -> dist/X/y.js, the same depth, so paths the code builds
// from import.meta.url (`../../images/profiles`, the repository root) still land in the repository; the .mjs
// modules (keys/worker.mjs is started as a worker by path) and the .sh files read at runtime next to their
// module are copied beside the compiled files.
//
// Only transpiled (TypeScript's own transpiler, file by file, like tsx): `npm run typecheck` checks types. The
// stamp dist/.stamp, written last, names every source and folder with the time the compile started;
// scripts/bin/fresh.mjs compares their mtimes with it, so a source edited since is never run from stale output.
// The new tree is built beside the old one and renamed into place: an interrupted compile leaves no half tree.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { distIsFresh, SKIP_DIRS, STAMP } from './fresh.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const src = path.join(root, 'scripts');
const dist = path.join(root, 'dist');

// --if-stale (npm's prepare): nothing to do when dist/ is already the sources' compiled form. npm runs prepare
// not only on `npm ci` but also when `npx edgeforge` first links the project into its cache, which would
// otherwise cost a full compile (15-20 s on a busy 2-core machine) before the first answer.
if (process.argv.includes('--if-stale') && distIsFresh(root).fresh) {
  console.error('edgeforge compile: dist/ is up to date');
  process.exit(0);
}

let ts;
try {
  ts = (await import('typescript')).default;
} catch {
  console.error('edgeforge compile: typescript is not installed (npm ci --omit=dev?); edgeforge will run the sources through tsx');
  process.exit(0);
}

const startedAt = Date.now();
const tmp = `${dist}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
const files = [];
const dirs = [];
const options = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ES2022,
  rewriteRelativeImportExtensions: true, // './validate.ts' -> './validate.js'
  sourceMap: false,
  removeComments: false,
};

function walk(rel) {
  dirs.push(path.join('scripts', rel));
  for (const e of readdirSync(path.join(src, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.includes(r)) walk(r);
      continue;
    }
    const from = path.join(src, r);
    if (e.name.endsWith('.d.mts') || e.name.endsWith('.d.ts')) continue; // types only
    if (e.name.endsWith('.ts')) {
      const out = ts.transpileModule(readFileSync(from, 'utf8'), { compilerOptions: options, fileName: from, reportDiagnostics: true });
      const bad = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
      if (bad.length) throw new Error(`${r}: ${ts.flattenDiagnosticMessageText(bad[0].messageText, '\n')}`);
      mkdirSync(path.join(tmp, rel), { recursive: true });
      writeFileSync(path.join(tmp, r.replace(/\.ts$/, '.js')), out.outputText);
    } else if (/\.(mjs|sh)$/.test(e.name)) {
      mkdirSync(path.join(tmp, rel), { recursive: true });
      copyFileSync(from, path.join(tmp, r)); // mode too: shell scripts stay executable
    } else continue;
    files.push(path.join('scripts', r));
  }
}

// cli/commands.json: every command's spec and the module holding its run, so `--help` imports no command
// (scripts/cli/registry.ts). Made by loading the freshly compiled commands once, here, instead of at each start.
async function writeCommandIndex() {
  const dir = path.join(tmp, 'cli', 'commands');
  const { commands } = await import(pathToFileURL(path.join(dir, 'index.js')).href);
  const { buildIndex, INDEX_FILE } = await import(pathToFileURL(path.join(tmp, 'cli', 'registry.js')).href);
  const modules = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.js'))) modules[f] = await import(pathToFileURL(path.join(dir, f)).href);
  writeFileSync(path.join(tmp, 'cli', INDEX_FILE), JSON.stringify(buildIndex(commands, modules), null, 1) + '\n');
}

try {
  walk('');
  await writeCommandIndex();
  writeFileSync(path.join(tmp, STAMP), JSON.stringify({ startedAt, dirs, files }) + '\n');
  rmSync(dist, { recursive: true, force: true });
  renameSync(tmp, dist);
} catch (err) {
  rmSync(tmp, { recursive: true, force: true });
  // a source tsx could not run either (a syntax error) or a command the index cannot place: fail loudly
  console.error(`edgeforge compile failed: ${err.message}`);
  process.exit(1);
}
console.error(`edgeforge compile: ${files.length} files -> dist/ in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
