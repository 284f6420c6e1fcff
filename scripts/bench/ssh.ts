// npm run bench:ssh [-- --devices 64,1000 --concurrency 16 --openssh-max 64 --profile DIR]
// N real sshd endpoints on loopback (one sshd per endpoint: its own port, host key and device root, like a
// device each), the same small first-boot bundle for every device. The "devices" run on the same two cores
// as the clients, so their sshd is configured as cheaply as a real one can be (sshd -r: no re-exec per
// connection; internal-sftp: no shell + sftp-server per upload; --reexec / --sftp-server restore the
// defaults). Both sides get the same daemons. In the same run:
//   - OpenSSH clients in parallel: `xargs -P C` running, per device, `scp -r` of the bundle and one `ssh`
//     with the same command edgeforge sends (sha256 check on the device, sudo, first-boot program);
//     host keys pinned (StrictHostKeyChecking=yes with a known_hosts of every endpoint);
//   - `edgeforge provision --json --concurrency C` (the CLI, its own process), which in addition runs preflight
//     and verify on every device; peak RSS from /usr/bin/time.
// Device roots are wiped between runs so both do the full work. Prints a table; --append adds it to BENCHMARKS.md.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loginUser, startEndpoints, type Fleetlet } from '../testkit/sshd.ts';
import { inventoryYaml, writeFakeBuild } from '../testkit/fake-build.ts';
import { applyCommand } from '../provision/phase/apply.ts';
import { deviceBundle } from '../provision/bundle.ts';
import { APPLIED_FILE, STAGING_PREFIX } from '../device/layout.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

const sizes = arg('devices', '64,1000').split(',').map(Number);
const conc = Number(arg('concurrency', '16'));
const bigConc = Number(arg('big-concurrency', '64'));
const opensshMax = Number(arg('openssh-max', '64'));
const append = process.argv.includes('--append');
// --profile DIR: a V8 CPU profile of each engine run (open in Chrome DevTools), to see where the controller's CPU goes
const profileDir = process.argv.includes('--profile') ? path.resolve(arg('profile', 'ssh-profile')) : undefined;

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 }));
    p.stdin.end(opts.input ?? '');
  });
}

function wipeRoots(f: Fleetlet): void {
  for (const e of f.endpoints) {
    rmSync(e.file('var/lib/edgeforge'), { recursive: true, force: true });
    rmSync(e.file('etc/edgeforge'), { recursive: true, force: true });
    for (const n of readdirSync(e.file('var/tmp'))) rmSync(e.file(`var/tmp/${n}`), { recursive: true, force: true });
  }
}

function appliedCount(f: Fleetlet): number {
  return f.endpoints.filter((e) => {
    try {
      return JSON.parse(readFileSync(e.file(APPLIED_FILE.slice(1)), 'utf8')).bundleSha256;
    } catch {
      return false;
    }
  }).length;
}

async function opensshRun(f: Fleetlet, out: string, c: number, knownHosts: string): Promise<{ ms: number; ok: number }> {
  // one line per device: port, local bundle dir, remote staging dir, the command edgeforge sends
  const lines = f.endpoints.map((e) => {
    const staging = `${e.root}${STAGING_PREFIX}openssh`;
    return [e.port, path.join(out, 'devices', e.name, 'bundle'), staging].join(' ');
  });
  const sshOpts = `-i ${f.clientKey} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o LogLevel=ERROR`;
  // the remote command is the same string edgeforge runs in its apply phase for a root login (check, first-boot program)
  const remote = applyCommand('$STAGING', 'firstboot.sh', '').replaceAll(`'$STAGING'`, '"$STAGING"');
  const script = `port=$1; src=$2; STAGING=$3
scp -q -r ${sshOpts} -P "$port" "$src" "${loginUser()}@127.0.0.1:$STAGING" &&
ssh ${sshOpts} -p "$port" ${loginUser()}@127.0.0.1 "STAGING='$STAGING'; $(cat ${path.join(out, 'remote.sh')})" >/dev/null 2>&1`;
  writeFileSync(path.join(out, 'remote.sh'), remote);
  writeFileSync(path.join(out, 'one.sh'), script);
  const r = await run('sh', ['-c', `xargs -P ${c} -L 1 sh ${path.join(out, 'one.sh')}`], { input: lines.join('\n') + '\n' });
  return { ms: r.ms, ok: appliedCount(f) };
}

/** CPU seconds the whole machine spent busy so far (/proc/stat: user, nice, system, irq, softirq, steal; USER_HZ 100) */
function machineBusyS(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0)) / 100;
}

interface EdgeforgeRun {
  ms: number;
  wallMs: number;
  ok: number;
  rssMiB: number;
  failed: string[];
  /** user+sys of the edgeforge process (node, its threads) */
  cpuS: number;
  /** every process on the machine during the run: edgeforge + the sshd "devices" and what they run */
  machineCpuS: number;
}

/** `cli`: the edgeforge CLI (wall time includes node + tsx start-up); else the engine alone (scripts/bench/ssh-engine.ts). */
async function edgeforgeRun(inv: string, out: string, keys: string, c: number, cli = false): Promise<EdgeforgeRun> {
  const args = cli
    ? [path.join(REPO, 'scripts/bin/edgeforge.mjs'), 'provision', '-i', inv, '-o', out, '--keys', keys, '--json', '--allow-unsigned', '--concurrency', String(c)]
    : [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), '--import', 'tsx', path.join(REPO, 'scripts/bench/ssh-engine.ts'), inv, out, keys, String(c)];
  const busy0 = machineBusyS();
  const r = await run('/usr/bin/time', ['-f', 'EDGEFORGE_MAXRSS_KB=%M EDGEFORGE_CPU=%U+%S', process.execPath, ...args], { env: { ...process.env, SSH_AUTH_SOCK: '' } });
  const machineCpuS = machineBusyS() - busy0;
  const rss = Number(/EDGEFORGE_MAXRSS_KB=(\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024;
  const cpu = /EDGEFORGE_CPU=([\d.]+)\+([\d.]+)/.exec(r.stderr);
  const cpuS = cpu ? Number(cpu[1]) + Number(cpu[2]) : NaN;
  let ok = 0;
  let ms = r.ms;
  const failed: string[] = [];
  try {
    const doc = JSON.parse(r.stdout);
    if (!cli) ms = doc.ms;
    for (const d of doc.devices) d.status === 'ok' || d.status === 'skipped' ? ok++ : failed.push(`${d.id}: ${d.phase}: ${d.message}`);
  } catch {
    failed.push(r.stderr.slice(0, 500));
  }
  return { ms, wallMs: r.ms, ok, rssMiB: rss, failed, cpuS, machineCpuS };
}

async function nodeStartupMs(): Promise<number> {
  const r = await run(process.execPath, [path.join(REPO, 'scripts/bin/edgeforge.mjs'), '--version']);
  return r.ms;
}

// whatever happens, no sshd of ours outlives the benchmark
let current: Fleetlet | undefined;
process.on('exit', () => current?.endpoints.forEach((e) => e.kill()));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

const rows: string[] = [];
const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
for (const n of sizes) {
  const tmp = mkdtempSync(path.join(tmpdir(), 'ef-bench-ssh-'));
  const t0 = Date.now();
  const f = await startEndpoints(n, { dir: path.join(tmp, 'sshd'), noReexec: !process.argv.includes('--reexec'), internalSftp: !process.argv.includes('--sftp-server') });
  current = f;
  const startS = (Date.now() - t0) / 1000;
  const out = path.join(tmp, 'out');
  const keys = path.join(tmp, 'keys');
  const devs = f.endpoints.map((e) => ({ id: e.name, host: '127.0.0.1', port: e.port, identityFile: f.clientKey, hostKey: e.hostKeyPublic }));
  const inv = path.join(tmp, 'fleet.yaml');
  writeFileSync(inv, inventoryYaml(devs, { name: `bench-${n}` }));
  const manifest = writeFakeBuild(
    out,
    devs.map((d) => d.id),
    { minimal: !process.argv.includes('--full-firstboot') },
  );
  // the OpenSSH side copies the bundle directory as is: give it the SHA256SUMS edgeforge writes
  for (const d of manifest.devices) writeFileSync(path.join(out, 'devices', d.id, 'bundle', 'SHA256SUMS'), deviceBundle(d).sums);
  const knownHosts = path.join(tmp, 'known_hosts');
  writeFileSync(knownHosts, f.endpoints.map((e) => `[127.0.0.1]:${e.port} ${e.hostKeyPublic}`).join('\n') + '\n');
  const c = n > 64 ? bigConc : conc;
  const startup = await nodeStartupMs(); // the CLI's fixed cost: node + tsx transpiling every command
  console.error(`bench:ssh: ${n} sshd endpoints started in ${startS.toFixed(1)} s; concurrency ${c}; load ${loadavg()[0].toFixed(1)}; node+tsx startup ${startup} ms`);

  const rounds = n <= opensshMax ? 2 : 1;
  const ef: Awaited<ReturnType<typeof edgeforgeRun>>[] = [];
  const os: Awaited<ReturnType<typeof opensshRun>>[] = [];
  for (let round = 0; round < rounds; round++) {
    if (n <= opensshMax) {
      wipeRoots(f);
      const o = await opensshRun(f, out, c, knownHosts);
      os.push(o);
      console.error(`  OpenSSH scp+ssh, xargs -P ${c}: ${(o.ms / 1000).toFixed(2)} s, ${o.ok}/${n} applied (load ${loadavg()[0].toFixed(1)})`);
    }
    wipeRoots(f);
    rmSync(path.join(out, 'logs'), { recursive: true, force: true });
    const e = await edgeforgeRun(inv, out, keys, c);
    ef.push(e);
    console.error(
      `  edgeforge engine, concurrency ${c}: ${(e.ms / 1000).toFixed(2)} s (process wall ${(e.wallMs / 1000).toFixed(2)} s), ${e.ok}/${n} ok, peak RSS ${e.rssMiB.toFixed(0)} MiB (load ${loadavg()[0].toFixed(1)})`,
    );
    console.error(
      `    CPU: edgeforge ${e.cpuS.toFixed(1)} s (${((e.cpuS * 1000) / n).toFixed(0)} ms/device, start-up included); whole machine ${e.machineCpuS.toFixed(1)} s (${((e.machineCpuS * 1000) / n).toFixed(0)} ms/device): the "devices" (sshd, their shells and commands) took the other ${(e.machineCpuS - e.cpuS).toFixed(1)} s`,
    );
    if (e.failed.length) console.error(`    failed: ${e.failed.slice(0, 5).join('\n    ')}`);
  }
  // a rerun through the CLI itself: every device already at the bundle hash
  const again = n <= opensshMax || process.argv.includes('--rerun') ? await edgeforgeRun(inv, out, keys, c, true) : { ms: NaN, ok: 0, rssMiB: 0, cpuS: NaN, machineCpuS: NaN };
  if (!Number.isNaN(again.ms))
    console.error(`  edgeforge provision CLI rerun (all skipped): ${(again.ms / 1000).toFixed(2)} s wall incl. start-up, ${again.ok}/${n} skipped/ok, peak RSS ${again.rssMiB.toFixed(0)} MiB`);
  const best = (xs: { ms: number }[]) => Math.min(...xs.map((x) => x.ms)) / 1000;
  const efBest = best(ef);
  const row = [
    date,
    String(n),
    String(c),
    os.length ? `${best(os).toFixed(2)} s (${os.map((o) => (o.ms / 1000).toFixed(1)).join(', ')})` : 'not run',
    `${efBest.toFixed(2)} s (${ef.map((o) => (o.ms / 1000).toFixed(1)).join(', ')})`,
    os.length ? `${(best(os) / efBest).toFixed(2)}×` : '—',
    `${Math.max(...ef.map((e) => e.rssMiB)).toFixed(0)} MiB`,
    `${(Math.min(...ef.map((e) => e.wallMs)) / 1000).toFixed(2)} s`,
    `${Math.min(...ef.map((e) => e.ok))}/${n}`,
    `${((Math.min(...ef.map((e) => e.cpuS)) * 1000) / n).toFixed(0)} / ${((Math.min(...ef.map((e) => e.machineCpuS)) * 1000) / n).toFixed(0)} ms`,
    Number.isNaN(again.ms) ? 'not run' : `${(again.ms / 1000).toFixed(2)} s`,
    loadavg()[0].toFixed(1),
  ];
  rows.push(`| ${row.join(' | ')} |`);
  await f.stop();
  current = undefined;
  rmSync(tmp, { recursive: true, force: true });
}

const table = [
  '| run (UTC) | endpoints | concurrency | OpenSSH scp+ssh via xargs -P (best; each) | edgeforge provision (best; each) | OpenSSH ÷ edgeforge | edgeforge peak RSS | edgeforge process wall (incl. start-up) | ok | CPU per device: edgeforge / whole machine | CLI rerun, all skipped (incl. start-up) | load after |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows,
].join('\n');
console.log(table);
if (append) appendFileSync(path.join(REPO, 'BENCHMARKS.md'), '\n' + table + '\n');
execFileSync('true');
