// npm run bench:build — `edgeforge build` of a generated 2,000-device fleet as a user runs it (the CLI in a child
// process; fresh keys/ with a real admin key, SOURCE_DATE_EPOCH fixed): first build, rebuild with nothing changed,
// rebuild after one device's entry changed; wall time, peak RSS (/usr/bin/time), output size (apparent and du),
// the build's own per-stage split when it reports one (--json "timings"); then `verify` of the output. Anchors from
// the same run: coreutils `sha256sum` of every file verify checks, the same output tree written by `tar -x`
// followed by one `sync -f` of its filesystem, and the keys and render stages alone (in this process, keys
// already present). BENCH_DEVICES=N for another size; BENCH_KEEP=1 keeps the work dir.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { loadInventoryBytes } from '../inventory/load.ts';
import { renderDevice } from '../render/device.ts';
import { keystoreSecrets } from '../pipeline/secrets.ts';
import { prepareStages } from '../pipeline/build/stages.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO, 'scripts/bin/edgeforge.mjs');
const N = Number(process.env.BENCH_DEVICES ?? 2000);
const EPOCH = '1767225600';
const root = mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ef-bench-build-'));
const inv = path.join(root, 'fleet.yaml');
const keys = path.join(root, 'keys');
const out = path.join(root, 'out');
const adminKey = path.join(root, 'admin.private.asc');
const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const now = () => performance.now();

interface Run {
  name: string;
  seconds: number;
  rssMiB: number;
  cpuS: number;
  load: string;
  exit: number;
  timings?: Record<string, number>;
  skipped?: number;
}

function edgeforge(name: string, args: string[]): Run {
  const l = load();
  const t0 = now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', process.execPath, CLI, ...args], {
    cwd: root,
    env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, EDGEFORGE_ADMIN_KEY: adminKey },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (now() - t0) / 1000;
  const m = /(\d+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (r.status !== 0) process.stderr.write(r.stderr.slice(-4000));
  let timings: Record<string, number> | undefined;
  let skipped: number | undefined;
  try {
    const j = JSON.parse(r.stdout);
    timings = j.timings;
    skipped = j.skipped;
  } catch {
    /* not JSON (verify) */
  }
  return { name, seconds, rssMiB: m ? Number(m[1]) / 1024 : NaN, cpuS: m ? Number(m[2]) + Number(m[3]) : NaN, load: l, exit: r.status ?? -1, timings, skipped };
}

const du = (dir: string, apparent: boolean) => Number(execFileSync('du', ['-s', '-B1', ...(apparent ? ['--apparent-size'] : []), dir], { encoding: 'utf8' }).split('\t')[0]);
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

try {
  execFileSync(process.execPath, [CLI, 'inventory', 'generate', '--devices', String(N), '-o', inv], { stdio: 'ignore' });
  const admin = /admins:\s*\n\s*- \{ name: ([^,]+), email: ([^ }]+)/.exec(readFileSync(inv, 'utf8'))!;
  const k = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: admin[1], email: admin[2] }], format: 'armored' } as never);
  mkdirSync(path.join(keys, 'admins'), { recursive: true });
  writeFileSync(path.join(keys, 'admins', 'fleet-ops.asc'), (k as { publicKey: string }).publicKey);
  writeFileSync(adminKey, (k as { privateKey: string }).privateKey, { mode: 0o600 });

  const common = ['-i', inv, '--keys', keys, '-o', out, '--json'];
  const runs: Run[] = [];
  runs.push(edgeforge('first build (keys generated)', ['build', ...common]));
  const size = { apparent: du(out, true), used: du(out, false) };
  runs.push(edgeforge('rebuild, nothing changed', ['build', ...common]));
  // one device's entry changes: its MAC address (unique, so the inventory stays valid)
  const text = readFileSync(inv, 'utf8');
  const macs = [...text.matchAll(/mac: "([0-9a-f:]+)"/g)];
  const victim = macs[Math.floor(macs.length / 2)];
  writeFileSync(inv, text.replace(victim[0], 'mac: "02:00:5e:ff:ff:01"'));
  runs.push(edgeforge('rebuild, one device changed', ['build', ...common]));
  const verify = edgeforge('verify (signature + every artifact)', ['verify', out, '--keys', keys]);
  // anchor: coreutils sha256sum of the same files (every artifact the manifest lists, holes read and hashed)
  const listed = (JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { devices: { artifacts: { path: string }[] }[] }).devices.flatMap((d) => d.artifacts.map((a) => a.path));
  let t0 = now();
  execFileSync('xargs', ['-0', 'sha256sum'], { cwd: out, input: listed.join('\0'), stdio: ['pipe', 'ignore', 'inherit'] });
  const sumS = (now() - t0) / 1000;
  // anchor: reading the sparse files whole (their holes included), nothing hashed: the most that reading holes costs
  const sparse = (JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { devices: { artifacts: { path: string; sparse?: unknown }[] }[] }).devices.flatMap((d) =>
    d.artifacts.filter((a) => a.sparse).map((a) => a.path),
  );
  t0 = now();
  for (const p of sparse) readFileSync(path.join(out, p));
  const sparseReadS = (now() - t0) / 1000;

  // anchor 1: the same tree written by tar -x, then one sync of its filesystem
  const tarball = path.join(root, 'out.tar');
  execFileSync('tar', ['-cSf', tarball, '-C', out, '.']);
  const tx = path.join(root, 'tar-x');
  mkdirSync(tx);
  execFileSync('sync', ['-f', root]);
  t0 = now();
  execFileSync('tar', ['-xSf', tarball, '-C', tx]);
  execFileSync('sync', ['-f', tx]);
  const tarS = (now() - t0) / 1000;

  // anchors 2 and 3: the keys stage (decrypt every device's identity) and the render stage alone, in this process
  const fleet = loadInventoryBytes(readFileSync(inv), inv);
  process.env.EDGEFORGE_ADMIN_KEY = adminKey;
  const src = await keystoreSecrets({ dir: keys, fleet, exampleAdmin: false, warn: () => {}, withSiteSops: true });
  t0 = now();
  const secrets = await src.secretsFor(fleet.active);
  const keysS = (now() - t0) / 1000;
  await src.close();
  // the same device stages `edgeforge build` renders with
  const stages = await prepareStages({ fleet, inventoryPath: inv, keysDir: keys, sourceDateEpoch: Number(EPOCH), warn: () => {} });
  t0 = now();
  let files = 0;
  for (const d of fleet.active) files += renderDevice(fleet, d, secrets.get(d.id)!, stages.render).length;
  const renderS = (now() - t0) / 1000;

  const cores = os.availableParallelism?.() ?? os.cpus().length;
  console.log(`build bench: ${N} devices, node ${process.version}, ${cores} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${new Date().toISOString()}, code ${REPO}`);
  console.log('| run | wall | CPU | peak RSS | load (1/5/15 min) at start | per-stage split (s) |');
  console.log('|---|---:|---:|---:|---|---|');
  for (const r of [...runs, verify]) {
    const split = r.timings
      ? Object.entries(r.timings)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ')
      : 'n/a';
    const skip = r.skipped !== undefined ? `; ${r.skipped} skipped` : '';
    console.log(`| ${r.name}${r.exit ? ` (exit ${r.exit})` : ''} | ${r.seconds.toFixed(1)} s | ${r.cpuS.toFixed(1)} s | ${r.rssMiB.toFixed(0)} MiB | ${r.load} | ${split}${skip} |`);
  }
  console.log(`| anchor: sha256sum of the same ${listed.length} files verify checks | ${sumS.toFixed(1)} s | | | | |`);
  console.log(`| anchor: read the ${sparse.length} sparse files whole (holes included), no hashing | ${sparseReadS.toFixed(2)} s | | | | |`);
  console.log(`| anchor: tar -x of the same tree + sync -f | ${tarS.toFixed(1)} s | | | ${load()} | |`);
  console.log(`| anchor: keys stage alone (decrypt ${fleet.active.length} identities) | ${keysS.toFixed(1)} s | | | | |`);
  console.log(`| anchor: render stage alone (${files} files) | ${renderS.toFixed(1)} s | | | | |`);
  console.log(`output after the first build: ${mib(size.apparent)} apparent, ${mib(size.used)} on disk (du)`);
  const [first, same, one] = runs;
  const ok = (b: boolean) => (b ? 'met' : 'NOT met');
  console.log(
    `goals: first < 20 s ${ok(first.seconds < 20)}; no-change < 5 s ${ok(same.seconds < 5)}; one-changed < 5 s ${ok(one.seconds < 5)}; ` +
      `peak RSS < 1 GiB ${ok(Math.max(...runs.map((r) => r.rssMiB)) < 1024)}; verify ${verify.exit === 0 ? 'OK' : 'FAILED'}, < 5 s ${ok(verify.seconds < 5)}`,
  );
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}
