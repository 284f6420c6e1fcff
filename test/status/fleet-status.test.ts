// 2,000 simulated devices publish their status to a real Mosquitto (TLS on 127.0.0.1), each with its own
// credential; `edgeforge status` reads them back and must count and explain every one. Also: a revoked
// device is refused, a device cannot write another device's topic, bad statuses are ignored and counted.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import mqtt from 'mqtt';
import { runCli } from '../helpers.ts';
import { publishAll, simReport, type SimDevice } from '../../scripts/status/simulate.ts';
import { deviceTopic } from '../../scripts/inventory/status.ts';
import type { StatusReport } from '../../scripts/status/report.ts';
import { RETRY_ATTENTION_ATTEMPTS } from '../../scripts/status/summary.ts';
import { ADMIN_PASSWORD, statusEnv, type StatusEnv } from './env.ts';

const HAVE = requireTools(['mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'openssl'], 'test/status/fleet-status.test.ts');
const BUILT = 'a'.repeat(64);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe.runIf(HAVE)('fleet status with a real Mosquitto', () => {
  let env: StatusEnv;
  const want = { upToDate: 0, behind: 0, firstBoot: 0, failed: 0, locked: 0, silent: 0, neverSeen: 0 };
  const expected = new Map<string, { bucket: keyof typeof want; reason?: RegExp }>();
  let publishMs = 0;

  beforeAll(async () => {
    // a 10-minute offline tolerance: a device silent for 25 minutes needs a person (manufacturing's preset waits an hour)
    env = await statusEnv(2000, { revokedCount: 1, offlineTolerance: '10m' });
    // the last build: every device's bundle hash
    const out = path.join(env.dir, 'out');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'manifest.json'), JSON.stringify({ format: 'edgeforge-manifest/1', fleet: env.fleet.name, devices: env.fleet.active.map((d) => ({ id: d.id, region: d.region, site: d.site, artifacts: [{ kind: 'other', path: `devices/${d.id}/bundle/SHA256SUMS`, sha256: BUILT, bytes: 1, secret: false }] })) }));
    const now = Date.now();
    const sims: SimDevice[] = [];
    env.fleet.active.forEach((d, i) => {
      const base = { applied: { bundleSha256: BUILT, at: iso(now - 86400e3) }, k3s: { version: env.fleet.k3s.version, certNotAfter: iso(now + 300 * 86400e3) } };
      let r: StatusReport | Buffer | undefined = simReport(d.id, d.siteId, env.fleet.name, { time: iso(now - (i % 600) * 1000), ...base });
      const k = i % 100;
      if (i >= 1970) {
        expected.set(d.id, { bucket: 'neverSeen', reason: /^no status yet: .*broker-config/ });
        r = undefined;
      } else if (k === 1) {
        r = { ...r, applied: { bundleSha256: 'b'.repeat(64), at: r.time } };
        expected.set(d.id, { bucket: 'behind', reason: /applied bundle bbbbbbbbbbbb is not the last build's aaaaaaaaaaaa/ });
      } else if (k === 2) {
        r = { ...r, firstboot: { step: 'k3s', state: 'running', at: iso(now - 60e3), error: '' } };
        expected.set(d.id, { bucket: 'firstBoot' });
      } else if (k === 3) {
        // a permanent failure needs a person; a temporary one is retried by the first-boot service (a note, or
        // attention once it has failed RETRY_ATTENTION_ATTEMPTS times); a reporter from before issue 17 says neither
        const kind = Math.floor(i / 100) % 4;
        if (kind === 0) {
          r = { ...r, firstboot: { step: 'k3s', state: 'failed', at: r.time, error: 'sha256 mismatch', retry: 'permanent', attempt: 1, next: '' } };
          expected.set(d.id, { bucket: 'failed', reason: /first boot failed at step k3s \(permanent: not retried.*\): sha256 mismatch/ });
        } else if (kind === 1) {
          r = { ...r, firstboot: { step: 'encrypt_data_volume', state: 'failed', at: r.time, error: 'cannot reach tang', retry: 'temporary', attempt: 2, next: r.time } };
          expected.set(d.id, { bucket: 'firstBoot' });
        } else if (kind === 2) {
          r = { ...r, firstboot: { step: 'encrypt_data_volume', state: 'failed', at: r.time, error: 'cannot reach tang', retry: 'temporary', attempt: RETRY_ATTENTION_ATTEMPTS, next: r.time } };
          expected.set(d.id, { bucket: 'firstBoot', reason: /first boot retrying step encrypt_data_volume \(attempt 6, next .*\): cannot reach tang/ });
        } else {
          r = { ...r, firstboot: { step: 'encrypt_data_volume', state: 'failed', at: r.time, error: 'cannot reach tang at http://10.0.0.5' } };
          expected.set(d.id, { bucket: 'failed', reason: /first boot failed at step encrypt_data_volume: cannot reach tang/ });
        }
      } else if (k === 4) {
        r = { ...r, dataVolume: { state: 'locked', since: '2026-12-01T22:00:00Z', detail: 'locked since 2026-12-01T22:00:00Z; attempt 9 failed' } };
        expected.set(d.id, { bucket: 'locked', reason: /data volume locked since 2026-12-01T22:00:00Z/ });
      } else if (k === 5) {
        r = { ...r, time: iso(now - 25 * 60e3) };
        expected.set(d.id, { bucket: 'silent', reason: /silent for 2[5-7]m/ });
      } else if (k === 6) {
        r = { ...r, time: iso(now + 3 * 3600e3) };
        expected.set(d.id, { bucket: 'upToDate', reason: /clock is 3h ahead/ });
      } else if (k === 7) {
        r = { ...r, k3s: { version: 'v1.30.0+k3s1', certNotAfter: iso(now + 5 * 86400e3) } };
        expected.set(d.id, { bucket: 'behind', reason: /runs K3s v1\.30\.0\+k3s1.*certificate expires/ });
      } else if (i === 8) {
        r = Buffer.from('{"format":"edgeforge-status/1", not json');
        expected.set(d.id, { bucket: 'neverSeen' });
      } else if (i === 108) {
        r = Buffer.from(JSON.stringify({ ...r, lastError: 'x'.repeat(9000) }));
        expected.set(d.id, { bucket: 'neverSeen' });
      } else expected.set(d.id, { bucket: 'upToDate' });
      if (r) sims.push({ id: d.id, username: d.id, password: env.passwords.get(d.id)!, topic: deviceTopic(env.cfg, d), payload: r, expirySec: env.cfg.expirySec });
    });
    for (const e of expected.values()) want[e.bucket]++;
    const t0 = performance.now();
    const res = await publishAll(env.cfg.broker.url, env.ca, sims);
    publishMs = performance.now() - t0;
    const refused = [...res].filter(([, r]) => !r.ok);
    expect(refused, `refused: ${refused.slice(0, 3).map(([id, r]) => `${id} ${r.reason}`).join('; ')}`).toEqual([]);
  }, 120_000);

  afterAll(async () => {
    await env?.broker.stop();
    if (env) rmSync(env.dir, { recursive: true, force: true });
  });

  it('counts 2,000 devices right and says why each needing a person does', async () => {
    const t0 = performance.now();
    const r = await runCli(['status', '--json', '-i', env.inventory, '-o', path.join(env.dir, 'out')], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    const ms = performance.now() - t0;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const s = JSON.parse(r.stdout);
    expect(s.totals).toEqual(want);
    expect(s.ignored).toEqual({ oversized: 1, malformed: 1, 'wrong-device': 0, 'unknown-device': 0 });
    expect(s.read.retained).toBe(1970 - 0);
    const byId = new Map<string, { bucket: string; reason: string }>(s.attention.map((a: { id: string; bucket: string; reason: string }) => [a.id, a]));
    for (const [id, e] of expected) {
      const got = s.devices.find((x: { id: string }) => x.id === id);
      expect(got.bucket, id).toBe(e.bucket);
      if (e.reason) expect(byId.get(id)?.reason, id).toMatch(e.reason);
    }
    // first boot running for a minute is not a problem yet; up to date devices with good clocks need nobody
    const calm = [...expected].filter(([, e]) => !e.reason && e.bucket !== 'neverSeen').map(([id]) => id);
    expect(calm.filter((id) => byId.has(id))).toEqual([]);
    expect(s.attention.length).toBe([...expected.values()].filter((e) => e.reason || e.bucket === 'neverSeen').length);
    // the revoked device is no device of the fleet any more
    expect(s.devices.find((x: { id: string }) => x.id === env.revoked[0])).toBeUndefined();
    console.log(`status: 2,000 devices published in ${Math.round(publishMs)} ms; edgeforge status (in-process) ${Math.round(ms)} ms, broker read ${s.read.ms} ms`);
  });

  it('--seen remembers every device that reported (for devices whose status later expires)', async () => {
    const seen = path.join(env.dir, 'seen.json');
    const r = await runCli(['status', '--json', '-i', env.inventory, '-o', path.join(env.dir, 'out'), '--seen', seen], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    expect(r.code).toBe(1);
    const doc = JSON.parse(readFileSync(seen, 'utf8'));
    // every readable status: 1,970 published minus the malformed and the oversized one
    expect(Object.keys(doc)).toHaveLength(1968);
    expect(Object.values(doc).every((t) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(String(t)))).toBe(true);
  });

  it('prints per-site counts and the devices that need a person; --site narrows it', async () => {
    const site = env.fleet.active[0].siteId;
    const r = await runCli(['status', '-i', env.inventory, '-o', path.join(env.dir, 'out'), '--site', site], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/site\s+devices\s+up to date\s+behind\s+first boot in progress\s+failed\s+locked\s+silent\s+never seen/);
    expect(r.stdout).toContain(site);
    expect(r.stdout).toMatch(/needs a person \(\d+\):/);
    const lines = r.stdout.split('\n').filter((l) => /^\S+\/\S+\s+\d+/.test(l));
    expect(lines).toHaveLength(1);
    expect(r.stdout).not.toContain(ADMIN_PASSWORD);
  });

  it('a wrong admin password is refused by the broker and said so (exit 1), never printed', async () => {
    const r = await runCli(['status', '-i', env.inventory, '-o', path.join(env.dir, 'out')], { env: { EDGEFORGE_STATUS_PASSWORD: 'not-the-password' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused user "edgeforge-admin"/);
    expect(r.stderr + r.stdout).not.toContain('not-the-password');
  });

  it("a revoked device's credential is refused", async () => {
    const id = env.revoked[0];
    const d = env.fleet.devices.find((x) => x.id === id)!;
    const res = await publishAll(env.cfg.broker.url, env.ca, [{ id, username: id, password: env.passwords.get(id)!, topic: deviceTopic(env.cfg, d), payload: simReport(id, d.siteId, env.fleet.name, { time: iso(Date.now()) }), expirySec: 60 }]);
    expect(res.get(id)!.ok).toBe(false);
    expect(res.get(id)!.reason).toMatch(/Not authorized|Bad User Name or Password/i);
  });

  it('a revoked device the broker still accepts (broker-config not rerun) is reported: exit 1, what to do', async () => {
    const id = env.revoked[0];
    const d = env.fleet.devices.find((x) => x.id === id)!;
    env.writeBroker([id]);
    await env.broker.reload();
    const res = await publishAll(env.cfg.broker.url, env.ca, [{ id, username: id, password: env.passwords.get(id)!, topic: deviceTopic(env.cfg, d), payload: simReport(id, d.siteId, env.fleet.name, { time: iso(Date.now()) }), expirySec: 60 }]);
    expect(res.get(id)!.ok).toBe(true);
    const r = await runCli(['status', '-i', env.inventory, '-o', path.join(env.dir, 'out'), '--site', d.siteId], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`${id}  stolen since 2026-11-30T00:00:00Z but reported at \\S+: the broker still accepts its credential`));
    // the operator reruns broker-config: the device is refused again; its last status stays until it expires
    env.writeBroker();
    await env.broker.reload();
    const again = await publishAll(env.cfg.broker.url, env.ca, [{ id, username: id, password: env.passwords.get(id)!, topic: deviceTopic(env.cfg, d), payload: simReport(id, d.siteId, env.fleet.name, { time: iso(Date.now()) }), expirySec: 60 }]);
    expect(again.get(id)!.ok).toBe(false);
  });

  it("a device cannot publish to another device's topic (and a wrong password is refused)", async () => {
    const [a, b] = env.fleet.active;
    const forged = simReport(b.id, b.siteId, env.fleet.name, { time: iso(Date.now()), firstboot: { step: 'k3s', state: 'failed', at: iso(Date.now()), error: 'forged' } });
    const res = await publishAll(env.cfg.broker.url, env.ca, [{ id: a.id, username: a.id, password: env.passwords.get(a.id)!, topic: deviceTopic(env.cfg, b), payload: forged, expirySec: 60 }]);
    expect(res.get(a.id)!.ok).toBe(false);
    const wrong = await publishAll(env.cfg.broker.url, env.ca, [{ id: b.id, username: b.id, password: 'f'.repeat(64), topic: deviceTopic(env.cfg, b), payload: forged, expirySec: 60 }]);
    expect(wrong.get(b.id)!.ok).toBe(false);
    // b's retained status is still its own
    const c = await mqtt.connectAsync(env.cfg.broker.url, { protocolVersion: 5, username: env.cfg.adminUser, password: ADMIN_PASSWORD, ca: env.ca, reconnectPeriod: 0 });
    const got = await new Promise<string>((resolve) => {
      c.on('message', (_t, p) => resolve(p.toString()));
      void c.subscribeAsync(deviceTopic(env.cfg, b));
    });
    await c.endAsync();
    expect(JSON.parse(got).firstboot.error).not.toBe('forged');
  });
});
