// 2,000 simulated devices publish their status to a real Mosquitto (TLS on 127.0.0.1), each with its own
// credential; `edgeforge status` reads them back and must count and explain every one. Also: a revoked
// device is refused, a device cannot write another device's topic, bad statuses are ignored and counted.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import mqtt from 'mqtt';
import net from 'node:net';
import { runCli } from '../helpers.ts';
import { publishAll, simReport, type SimDevice } from '../../scripts/testkit/status-reports.ts';
import { deviceTopic } from '../../scripts/inventory/fleet-status.ts';
import type { StatusReport } from '../../scripts/fleet-status/report.ts';
import { RETRY_ATTENTION_ATTEMPTS } from '../../scripts/fleet-status/summary.ts';
import { ADMIN_PASSWORD, statusEnv, type StatusEnv } from './env.ts';

const HAVE = requireTools(['mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'openssl'], 'test/status/fleet-status.test.ts');
const BUILT = 'a'.repeat(64);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe.runIf(HAVE)('fleet status with a real Mosquitto', () => {
  let env: StatusEnv;
  const want = { upToDate: 0, behind: 0, firstBoot: 0, failed: 0, locked: 0, silent: 0, neverSeen: 0 };
  const expected = new Map<string, { bucket: keyof typeof want; reason?: RegExp }>();
  /** devices whose status the broker can date (it carries an expiry): what --seen remembers */
  let dated = 0;
  let publishMs = 0;

  beforeAll(async () => {
    // a 10-minute offline tolerance: a device silent for 25 minutes needs a person (manufacturing's preset waits an hour)
    env = await statusEnv(2000, { revokedCount: 1, offlineTolerance: '10m' });
    // the last build: every device's bundle hash
    const out = path.join(env.dir, 'out');
    mkdirSync(out, { recursive: true });
    writeFileSync(
      path.join(out, 'manifest.json'),
      JSON.stringify({
        format: 'edgeforge-manifest/1',
        fleet: env.fleet.name,
        devices: env.fleet.active.map((d) => ({
          id: d.id,
          region: d.region,
          site: d.site,
          artifacts: [{ kind: 'other', path: `devices/${d.id}/bundle/SHA256SUMS`, sha256: BUILT, bytes: 1, secret: false }],
        })),
      }),
    );
    const now = Date.now();
    const sims: SimDevice[] = [];
    env.fleet.active.forEach((d, i) => {
      const base = { applied: { bundleSha256: BUILT, at: iso(now - 86400e3) }, k3s: { version: env.fleet.k3s.version, certNotAfter: iso(now + 300 * 86400e3) } };
      let r: StatusReport | Buffer | undefined = simReport(d.id, d.siteId, env.fleet.name, { time: iso(now - (i % 600) * 1000), ...base });
      const k = i % 100;
      // what the broker says: how much expiry is left (as if it arrived that long ago), or none at all
      let sim: Partial<SimDevice> = { expirySec: env.cfg.expirySec };
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
        // attention once it has failed RETRY_ATTENTION_ATTEMPTS times); a reporter older than the retrying first-boot service says neither
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
        // reached the broker 25 minutes ago (so 25 minutes of its expiry are gone), stamped then
        r = { ...r, time: iso(now - 25 * 60e3) };
        sim = { expirySec: env.cfg.expirySec - 25 * 60 };
        expected.set(d.id, { bucket: 'silent', reason: /^silent for 2[5-7]m \(last status received .*or the broker refuses it/ });
      } else if (k === 6) {
        r = { ...r, time: iso(now + 3 * 3600e3) };
        expected.set(d.id, { bucket: 'upToDate', reason: /clock is 3h ahead/ });
      } else if (k === 7) {
        r = { ...r, k3s: { version: 'v1.30.0+k3s1', certNotAfter: iso(now + 5 * 86400e3) } };
        expected.set(d.id, { bucket: 'behind', reason: /runs K3s v1\.30\.0\+k3s1.*certificate expires/ });
      } else if (k === 9 || k === 10) {
        // no message expiry (MQTT 3.1.1, or v5 without one): stamped just now, but the broker cannot date it
        r = { ...r, time: iso(now) };
        sim = k === 9 ? { protocolVersion: 4 } : { expirySec: undefined };
        expected.set(d.id, { bucket: 'silent', reason: /no message expiry, so when it arrived is unknown and it is not counted as current/ });
      } else if (k === 11) {
        // stamped just now (a clock 25 minutes ahead, or a forged time), but 25 minutes of its expiry are gone
        r = { ...r, time: iso(now) };
        sim = { expirySec: env.cfg.expirySec - 25 * 60 };
        expected.set(d.id, { bucket: 'silent', reason: /^silent for 2[5-7]m .*its clock is 2[5-7]m ahead/ });
      } else if (k === 12) {
        // received just now, stamped two hours ago: current, with a clock note
        r = { ...r, time: iso(now - 2 * 3600e3) };
        expected.set(d.id, { bucket: 'upToDate', reason: /its clock is 2h behind/ });
      } else if (i === 8) {
        r = Buffer.from('{"format":"edgeforge-status/1", not json');
        expected.set(d.id, { bucket: 'neverSeen' });
      } else if (i === 108) {
        r = Buffer.from(JSON.stringify({ ...r, lastError: 'x'.repeat(9000) }));
        expected.set(d.id, { bucket: 'neverSeen' });
      } else expected.set(d.id, { bucket: 'upToDate' });
      if (r) sims.push({ id: d.id, username: d.id, password: env.passwords.get(d.id)!, topic: deviceTopic(env.cfg, d), payload: r, ...sim });
      if (r && !Buffer.isBuffer(r) && sim.expirySec !== undefined) dated++;
    });
    for (const e of expected.values()) want[e.bucket]++;
    const t0 = performance.now();
    const res = await publishAll(env.cfg.broker.url, env.ca, sims);
    publishMs = performance.now() - t0;
    const refused = [...res].filter(([, r]) => !r.ok);
    expect(
      refused,
      `refused: ${refused
        .slice(0, 3)
        .map(([id, r]) => `${id} ${r.reason}`)
        .join('; ')}`,
    ).toEqual([]);
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
    // every readable status the broker can date: 1,970 published minus the malformed and the oversized one and the 40 without expiry
    expect(dated).toBe(1928);
    expect(Object.keys(doc)).toHaveLength(dated);
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
    // a refused device looks silent from here: said under the table, with what the broker's log shows
    expect(r.stdout).toMatch(/silent or never seen may also mean refused: .*\n.*"Client <unknown> disconnected, not authorised\."/);
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
    const res = await publishAll(env.cfg.broker.url, env.ca, [
      { id, username: id, password: env.passwords.get(id)!, topic: deviceTopic(env.cfg, d), payload: simReport(id, d.siteId, env.fleet.name, { time: iso(Date.now()) }), expirySec: 60 },
    ]);
    expect(res.get(id)!.ok).toBe(false);
    expect(res.get(id)!.reason).toMatch(/Not authorized|Bad User Name or Password/i);
  });

  it('a revoked device the broker still accepts is reported even when its report is back-dated; one without expiry too; --clear-departed', async () => {
    const id = env.revoked[0];
    const d = env.fleet.devices.find((x) => x.id === id)!;
    const send = (over: Partial<SimDevice>) =>
      publishAll(env.cfg.broker.url, env.ca, [
        {
          id,
          username: id,
          password: env.passwords.get(id)!,
          topic: deviceTopic(env.cfg, d),
          payload: simReport(id, d.siteId, env.fleet.name, { time: iso(Date.parse(env.revokedAt) - 3600e3) }),
          expirySec: env.cfg.expirySec,
          ...over,
        },
      ]).then((m) => m.get(id)!);
    const status = (...extra: string[]) =>
      runCli(['status', '--json', '-i', env.inventory, '-o', path.join(env.dir, 'out'), '--site', d.siteId, ...extra], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    // the operator forgot broker-config: the broker still has the revoked device's user
    env.writeBroker([id]);
    await env.broker.reload();
    // a thief stamps the report an hour before the revoke; the broker received it now, after the revoke
    expect((await send({})).ok).toBe(true);
    let r = await status();
    expect(r.code).toBe(1);
    let s = JSON.parse(r.stdout);
    expect(s.inactiveNeedsPerson).toEqual([id]);
    expect(s.inactive[0].reason).toMatch(
      new RegExp(
        `^stolen since ${env.revokedAt}, but this status reached the broker after that \\(at \\S+ or later; its own time says \\S+\\): the broker still accepts its credential — run \`edgeforge status broker-config\` and reload the broker`,
      ),
    );
    // not counted: the revoked device is no device of the fleet's totals
    expect(s.devices.find((x: { id: string }) => x.id === id)).toBeUndefined();
    expect(Object.values(s.totals as Record<string, number>).reduce((a, n) => a + n, 0)).toBe(env.fleet.active.filter((x) => x.siteId === d.siteId).length);
    // a document that does not read hides nothing: it too reached the broker after the revoke
    const malformedBefore = s.ignored.malformed as number;
    expect((await send({ payload: Buffer.from('{"not": "a status"}') })).ok).toBe(true);
    r = await status();
    expect(r.code).toBe(1);
    s = JSON.parse(r.stdout);
    expect(s.inactiveNeedsPerson).toEqual([id]);
    expect(s.inactive[0].reason).toMatch(/its own time says unknown: its document is malformed\): the broker still accepts its credential/);
    expect(s.ignored.malformed).toBe(malformedBefore); // judged with the departed devices, not merely counted
    // a will or an MQTT 3.1.1 publish leaves a status that never expires: listed, needs a person, clearable
    expect((await send({ protocolVersion: 4 })).ok).toBe(true);
    s = JSON.parse((await status()).stdout);
    expect(s.inactive[0]).toMatchObject({ id, expiry: 'none', reason: expect.stringMatching(/no message expiry .* never leaves the broker .*edgeforge status --clear-departed/) });
    // the operator reruns broker-config and reloads: the device is refused; its statuses are cleared once read
    env.writeBroker();
    await env.broker.reload();
    expect((await send({})).ok).toBe(false);
    r = await status('--clear-departed');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).cleared).toEqual([id]);
    r = await status();
    expect(JSON.parse(r.stdout).inactive).toEqual([]);
  });

  it("one device's credential cannot take another device's client id", async () => {
    const [a, b] = env.fleet.active;
    const victim = await mqtt.connectAsync(env.cfg.broker.url, { protocolVersion: 5, clientId: b.id, username: b.id, password: env.passwords.get(b.id)!, ca: env.ca, reconnectPeriod: 0 });
    let closed = false;
    victim.on('close', () => (closed = true));
    const mark = env.broker.log().length;
    const thief = await mqtt.connectAsync(env.cfg.broker.url, { protocolVersion: 5, clientId: b.id, username: a.id, password: env.passwords.get(a.id)!, ca: env.ca, reconnectPeriod: 0 });
    for (let i = 0; i < 30 && !env.broker.log().slice(mark).includes(`u'${a.id}'`); i++) await new Promise((res) => setTimeout(res, 100));
    // the broker named the thief's session after its user, so b's session was not touched
    expect(env.broker.log().slice(mark)).toContain(`as ${a.id} (p5, c1, k60, u'${a.id}')`);
    expect(env.broker.log().slice(mark)).not.toContain(`Client ${b.id} already connected`);
    await new Promise((res) => setTimeout(res, 300));
    expect(closed).toBe(false);
    await thief.endAsync();
    await victim.endAsync();
  });

  it('a reader whose session another login as the admin takes mid-read (same client id) tries again and finishes', async () => {
    // The reader goes through a proxy that takes what the broker sends at once and passes it on slowly, so the
    // other login lands mid-read for sure. When the broker closes the reader's session the proxy drops what it
    // still holds (the close reaches the reader mid-read; over loopback the whole burst would already be in the
    // reader's socket buffer before any other login could land).
    let conns = 0;
    let kicked: Promise<void> | undefined;
    const proxy = net.createServer((client) => {
      const n = conns++;
      const up = net.connect(env.cfg.broker.port, '127.0.0.1');
      client.pipe(up);
      const queue: Buffer[] = [];
      let sent = 0;
      const pump = setInterval(() => {
        const chunk = queue.shift();
        if (!chunk) return;
        client.write(chunk);
        sent += chunk.length;
        if (n === 0 && sent > 100_000 && !kicked)
          kicked = mqtt.connectAsync(env.cfg.broker.url, { protocolVersion: 5, username: env.cfg.adminUser, password: ADMIN_PASSWORD, ca: env.ca, reconnectPeriod: 0 }).then((c) => c.endAsync());
      }, 25);
      up.on('data', (chunk) => queue.push(chunk));
      const drop = () => (clearInterval(pump), client.destroy(), up.destroy());
      up.on('close', drop);
      client.on('close', drop);
      up.on('error', drop);
      client.on('error', drop);
    });
    await new Promise<void>((res) => proxy.listen(0, '127.0.0.1', res));
    const port = (proxy.address() as net.AddressInfo).port;
    const before = env.broker.log().length;
    const r = await runCli(['status', '--json', '-i', env.inventory, '-o', path.join(env.dir, 'out'), '--broker', `mqtts://127.0.0.1:${port}`], { env: { EDGEFORGE_STATUS_PASSWORD: ADMIN_PASSWORD } });
    await kicked;
    proxy.close();
    expect(r.stderr, r.stderr).toBe('');
    const s = JSON.parse(r.stdout);
    expect(s.read.attempts).toBe(2);
    expect(s.read.retained).toBe(1970);
    expect(env.broker.log().slice(before)).toContain(`Client ${env.cfg.adminUser} already connected, closing old connection.`);
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
