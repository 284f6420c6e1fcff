// npm run bench:gitfetch — what one device fetches per GitOps commit: the tree `edgeforge gitops` writes for the
// example fleet and generated fleets (fresh keys/ with the example admin), packed with real `git` as a depth-1
// clone transfers it (pipeline/gitops/measure.ts). Prints per fleet: files, tree bytes, pack bytes, and the
// line pack ≈ fixed + per-Flux-device × devices through the smallest and largest measured (what `plan` uses for a fleet
// whose own tree it cannot measure: scripts/render/plan/load.ts TREE_FETCH_MODEL). BENCH_SIZES=200,2000.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from '../inventory/generate.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { runsFlux } from '../render/flux/sync.ts';
import { measureTreeFetch } from '../pipeline/gitops/measure.ts';
import { readFileSync } from 'node:fs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO, 'scripts/bin/edgeforge.mjs');
const sizes = (process.env.BENCH_SIZES ?? '200,2000').split(',').map(Number);
const root = mkdtempSync(path.join(os.tmpdir(), 'ef-bench-gitfetch-'));
const cli = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });

const rows: { fleet: string; flux: number; files: number; treeBytes: number; packBytes: number; git: string }[] = [];
try {
  const fleets: [string, string][] = [
    ['example (14 devices)', readFileSync(path.join(REPO, 'inventory/example.yaml'), 'utf8')],
    ...sizes.map((n): [string, string] => [`generated ${n}`, generateInventory(n)]),
  ];
  for (const [name, text] of fleets) {
    const dir = mkdtempSync(path.join(root, 'f-'));
    const inv = path.join(dir, 'fleet.yaml');
    writeFileSync(inv, text);
    if (name.startsWith('example')) copyFileSync(path.join(REPO, 'inventory/schema.json'), path.join(dir, 'schema.json'));
    cli(['keys', 'init', '--example-admin', '-i', inv, '--keys', path.join(dir, 'keys')]);
    cli(['gitops', '-i', inv, '--keys', path.join(dir, 'keys'), '--to', path.join(dir, 'tree')]);
    const m = (await measureTreeFetch(path.join(dir, 'tree')))!;
    const flux = loadInventoryBytes(Buffer.from(text), inv).active.filter(runsFlux).length;
    rows.push({ fleet: name, flux, files: m.files, treeBytes: m.treeBytes, packBytes: m.packBytes, git: m.git });
    console.log(`${name}: ${flux} Flux devices, ${m.files} files, ${m.treeBytes} tree bytes, pack ${m.packBytes} bytes (${m.git})`);
  }
  // the line through the smallest and the largest fleet measured: pack = fixed + perDevice × flux
  const [a, b] = [rows[0], rows[rows.length - 1]];
  const slope = (b.packBytes - a.packBytes) / (b.flux - a.flux);
  const fixed = a.packBytes - slope * a.flux;
  for (const r of rows) console.log(`  ${r.fleet}: line gives ${Math.round(fixed + slope * r.flux)} bytes, measured ${r.packBytes}`);
  console.log(
    `line: pack ≈ ${Math.round(fixed)} + ${Math.round(slope)} × Flux devices (bytes); load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}; ${new Date().toISOString()}`,
  );
} finally {
  if (!process.env.BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}
