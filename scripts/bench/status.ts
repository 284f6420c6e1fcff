// npm run bench:status [-- N]  — N devices' (default 2,000) retained statuses read from a real Mosquitto
// (TLS on 127.0.0.1) and summarized by `edgeforge status`, beside the anchor measured in the same run: a
// plain `mosquitto_sub` of the same retained topics with the same admin user (-C N: it exits once it has
// all N), and `edgeforge validate` of the same inventory (the start-up + inventory cost every command pays).
// Each is run RUNS times (default 5); min / median / max.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_PASSWORD, statusEnv } from '../testkit/status-testbed.ts';
import { publishAll, simReport } from '../testkit/status-reports.ts';
import { deviceTopic, fleetStatusFilter } from '../inventory/fleet-status.ts';
import { readFleetStatus } from '../fleet-status/read.ts';

const N = Number(process.argv[2] ?? process.env.BENCH_DEVICES ?? 2000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const fmt = (x: { min: number; median: number; max: number }) => `median ${(x.median / 1000).toFixed(3)} s (min ${(x.min / 1000).toFixed(3)}, max ${(x.max / 1000).toFixed(3)})`;

const env = await statusEnv(N);
try {
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const t0 = performance.now();
  const res = await publishAll(
    env.cfg.broker.url,
    env.ca,
    env.fleet.active.map((d, i) => ({
      id: d.id,
      username: d.id,
      password: env.passwords.get(d.id)!,
      topic: deviceTopic(env.cfg, d),
      payload: simReport(d.id, d.siteId, env.fleet.name, { time: iso(now - (i % 600) * 1000), k3s: { version: env.fleet.k3s.version, certNotAfter: iso(now + 300 * 86400e3) } }),
      expirySec: env.cfg.expirySec,
    })),
  );
  const publishS = (performance.now() - t0) / 1000;
  const refused = [...res.values()].filter((r) => !r.ok).length;
  if (refused) throw new Error(`${refused} device(s) could not publish`);
  const out = path.join(env.dir, 'out');
  mkdirSync(out, { recursive: true });
  const pwFile = path.join(env.dir, 'admin-password');
  writeFileSync(pwFile, ADMIN_PASSWORD + '\n', { mode: 0o600 });

  const cli: number[] = [];
  const inproc: number[] = [];
  const sub: number[] = [];
  const validate: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    // the command as an operator runs it: a new Node process (tsx), inventory load, broker read, summary, JSON out
    let t = performance.now();
    const c = spawnSync(process.execPath, [path.join(REPO, 'scripts/bin/edgeforge.mjs'), 'status', '--json', '-i', env.inventory, '-o', out, '--password-file', pwFile], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    cli.push(performance.now() - t);
    if (c.status !== 0 && c.status !== 1) throw new Error(`edgeforge status failed: ${c.stderr}`);
    const doc = JSON.parse(c.stdout);
    if (doc.read.retained + doc.read.live !== N) throw new Error(`edgeforge status read ${doc.read.retained + doc.read.live} statuses, expected ${N}`);
    // the same work in a warm process (what a long-running dashboard would pay)
    t = performance.now();
    const s = await readFleetStatus(env.fleet, { inventoryFile: env.inventory, outDir: out, password: ADMIN_PASSWORD, now: new Date() });
    inproc.push(performance.now() - t);
    if (s.totals.upToDate !== N) throw new Error(`in-process: ${s.totals.upToDate} up to date, expected ${N}`);
    // the floor every command pays today: a new process that loads and validates the same inventory
    t = performance.now();
    const v = spawnSync(process.execPath, [path.join(REPO, 'scripts/bin/edgeforge.mjs'), 'validate', '-i', env.inventory], { encoding: 'utf8' });
    validate.push(performance.now() - t);
    if (v.status !== 0) throw new Error(`edgeforge validate failed: ${v.stderr}`);
    // the anchor: mosquitto_sub of the same retained topics, same user, exits after N messages
    t = performance.now();
    const m = spawnSync(
      'mosquitto_sub',
      [
        '-V',
        'mqttv5',
        '-h',
        '127.0.0.1',
        '-p',
        String(env.cfg.broker.port),
        '--cafile',
        path.join(env.dir, 'broker-ca.pem'),
        '-u',
        env.cfg.adminUser,
        '-P',
        ADMIN_PASSWORD,
        '-t',
        fleetStatusFilter(env.cfg),
        '-C',
        String(N),
        '-W',
        '30',
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    sub.push(performance.now() - t);
    if (m.status !== 0 || m.stdout.trim().split('\n').length !== N) throw new Error(`mosquitto_sub: exit ${m.status}, ${m.stdout.trim().split('\n').length} lines: ${m.stderr}`);
  }
  const load = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  console.log(`bench:status — ${N} devices, ${RUNS} runs, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, load average ${load}`);
  console.log(`  setup: ${N} devices published (own credentials, TLS, mqtt.js) in ${publishS.toFixed(1)} s`);
  console.log(`  edgeforge status --json (new process)   ${fmt(stats(cli))}   goal < 2 s`);
  console.log(`  readFleetStatus (warm process)          ${fmt(stats(inproc))}`);
  console.log(`  anchor: mosquitto_sub -C ${N}           ${fmt(stats(sub))}`);
  console.log(`  floor: edgeforge validate (new process) ${fmt(stats(validate))}   (CLI start + inventory load, no broker)`);
} finally {
  await env.broker.stop();
  rmSync(env.dir, { recursive: true, force: true });
}
