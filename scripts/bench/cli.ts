// npm run bench:cli — how long the CLI takes to answer, beside `node -e 0` measured in the same run (the floor:
// starting node itself). Each case runs BENCH_RUNS times (default 9), interleaved round by round so a burst of
// load on this shared machine hits every case alike; median and min are printed. Goals: --help and
// `<cmd> --help` under 0.3 s, `validate` of the example under 1 s.
//   npm run bench:cli                       this checkout
//   npm run bench:cli -- --repo /tmp/other  another checkout (e.g. main before a change), same cases
//   EDGEFORGE_RUN_SOURCES=1 npm run bench:cli   force the tsx fallback (what a stale dist/ costs)
//   BENCH_NPX=0 npm run bench:cli               leave out the `npx edgeforge` row (npm's start-up, not ours)
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const argRepo = process.argv.indexOf('--repo');
const repo = path.resolve(argRepo >= 0 ? process.argv[argRepo + 1] : path.join(here, '../..'));
const bin = path.join(repo, 'scripts/bin/edgeforge.mjs');
const RUNS = Number(process.env.BENCH_RUNS ?? 9);

const npx = path.join(path.dirname(process.execPath), 'npx');
const cases: { name: string; args: string[]; cmd?: string; goalMs?: number }[] = [
  { name: 'node -e 0 (anchor)', args: ['-e', '0'] },
  { name: 'edgeforge --help', args: [bin, '--help'], goalMs: 300 },
  { name: 'edgeforge validate --help', args: [bin, 'validate', '--help'], goalMs: 300 },
  { name: 'edgeforge build --help', args: [bin, 'build', '--help'], goalMs: 300 },
  { name: 'edgeforge validate -i inventory/example.yaml', args: [bin, 'validate', '-i', 'inventory/example.yaml'], goalMs: 1000 },
  // the same program behind npm's own start-up (npm exec loads the npm CLI and the project's tree first)
  ...(process.env.BENCH_NPX === '0' ? [] : [{ name: 'npx edgeforge --help (npm exec + the above)', cmd: npx, args: ['--no-install', 'edgeforge', '--help'] }]),
];

const loadBefore = os.loadavg();
const times = cases.map(() => [] as number[]);
for (let r = 0; r < RUNS; r++) {
  cases.forEach((c, i) => {
    const t0 = performance.now();
    const p = spawnSync(c.cmd ?? process.execPath, c.args, { cwd: repo, encoding: 'utf8', env: process.env });
    const ms = performance.now() - t0;
    if (p.status !== 0) throw new Error(`${c.name}: exit ${p.status}\n${p.stderr}`);
    times[i].push(ms);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const anchor = median(times[0]);
let head = 'unknown';
try {
  head = spawnSync('git', ['-C', repo, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).stdout.trim().slice(0, 70);
} catch {
  /* not a git checkout */
}
let mode = 'sources through tsx';
try {
  const { distIsFresh } = (await import(path.join(repo, 'scripts/bin/fresh.mjs'))) as { distIsFresh: (root: string) => { fresh: boolean; reason: string } };
  const f = distIsFresh(repo);
  mode = process.env.EDGEFORGE_RUN_SOURCES ? 'sources through tsx (EDGEFORGE_RUN_SOURCES=1)' : f.fresh ? 'compiled dist/' : `sources through tsx (${f.reason})`;
} catch {
  /* a checkout from before dist/ existed */
}

console.log(`cli bench: ${repo} (${head}); runs ${mode}`);
console.log(
  `${RUNS} runs each, interleaved; node ${process.version}, ${os.availableParallelism?.() ?? os.cpus().length} CPUs, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} after`,
);
console.log('');
console.log(`${'case'.padEnd(46)} ${'median'.padStart(8)} ${'min'.padStart(8)}   beside node -e 0`);
cases.forEach((c, i) => {
  const m = median(times[i]);
  const mn = Math.min(...times[i]);
  const d = m - anchor;
  const rel = i === 0 ? 'anchor' : `${d < 0 ? '-' : '+'}${Math.abs(d).toFixed(0)} ms, ${(m / anchor).toFixed(1)}x`;
  const goal = c.goalMs ? `   goal < ${c.goalMs} ms: ${m < c.goalMs ? 'met' : 'MISSED'}` : '';
  console.log(`${c.name.padEnd(46)} ${m.toFixed(0).padStart(5)} ms ${mn.toFixed(0).padStart(5)} ms   ${rel}${goal}`);
});

// the freshness check the entry point runs on every start (stat of each compiled source and its folder)
try {
  const { distIsFresh } = (await import(path.join(repo, 'scripts/bin/fresh.mjs'))) as { distIsFresh: (root: string) => { fresh: boolean; checked: number } };
  const N = 50;
  let checked = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) checked = distIsFresh(repo).checked;
  console.log(`\nfreshness check of dist/ (in process): ${((performance.now() - t0) / N).toFixed(2)} ms for ${checked} paths stat'ed`);
} catch {
  /* no dist/ support in that checkout */
}
