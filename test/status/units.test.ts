// The pure parts of fleet status: the inventory block's errors, Mosquitto's $7$ hashes (both ways with the
// real mosquitto_passwd), reading statuses, and classifying a device.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tool } from '../../scripts/testkit/tools.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { mosquittoHash, verifyMosquittoHash } from '../../scripts/keys/mosquitto-passwd.ts';
import { readStatus, MAX_STATUS_BYTES } from '../../scripts/fleet-status/report.ts';
import { classify, inactiveNote, type SummaryInput } from '../../scripts/fleet-status/summary.ts';
import { arrivalOf, type Arrival } from '../../scripts/fleet-status/arrival.ts';
import { adminHash, adminPasswordProblem } from '../../scripts/fleet-status/admin-credential.ts';
import { ADMIN_PBKDF2_ITERATIONS, mosquittoHashIterations } from '../../scripts/keys/mosquitto-passwd.ts';
import { simReport } from '../../scripts/testkit/status-reports.ts';
import { deviceTopic } from '../../scripts/inventory/fleet-status.ts';

const inv = (status: string) => generateInventory(3, { name: 'units' }) + status;

describe('inventory status block', () => {
  it('is optional; given, it derives broker, topic and expiry', () => {
    expect(loadInventoryBytes(Buffer.from(inv('')), 'f.yaml').status).toBeUndefined();
    const f = loadInventoryBytes(Buffer.from(inv('status: { broker: "mqtts://mqtt.example.com", caFile: ca.pem, period: 30m }\n')), 'f.yaml');
    const c = f.status!;
    expect(c.broker).toEqual({ host: 'mqtt.example.com', port: 8883, url: 'mqtts://mqtt.example.com:8883' });
    expect(c.expirySec).toBe(3600);
    expect(deviceTopic(c, f.active[0])).toBe(`edgeforge/units/${f.active[0].region}/${f.active[0].site}/${f.active[0].id}/status`);
  });

  it('refuses plain MQTT, odd periods and unknown keys with FILE:LINE:COL', () => {
    let err: Error | undefined;
    const text = inv('status:\n  broker: mqtt://mqtt.example.com:1883\n  caFile: ca.pem\n  period: 7m\n  user: x\n');
    const lineOf = (needle: string) => text.slice(0, text.indexOf(needle)).split('\n').length;
    try {
      loadInventoryBytes(Buffer.from(text), 'f.yaml');
    } catch (e) {
      err = e as Error;
    }
    const problems = (err as Error & { problems: { line: number; col: number; message: string }[] }).problems;
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatchObject({ line: lineOf('  broker: mqtt://'), col: 11 });
    expect(problems[0].message).toMatch(/^status\.broker: .* must be mqtts:\/\/HOST\[:PORT\] \(TLS only/);
    expect(problems[1]).toMatchObject({ line: lineOf('  period: 7m'), message: expect.stringMatching(/^status\.period: "7m" is not one of "1m", "2m"/) });
    expect(problems[2]).toMatchObject({ line: lineOf('  user: x'), message: expect.stringMatching(/unknown key "user" in status/) });
  });
});

describe("Mosquitto's password hashes", () => {
  it('mosquitto_passwd verifies as ours; ours has its format', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-pw-'));
    const r = spawnSync(tool('mosquitto_passwd'), ['-c', '-b', path.join(dir, 'pw'), 'dev', 'p4ss'], { encoding: 'utf8' });
    expect(r.error, 'mosquitto_passwd (mosquitto) is not installed').toBeUndefined();
    const theirs = readFileSync(path.join(dir, 'pw'), 'utf8').trim().split(':')[1];
    expect(verifyMosquittoHash('p4ss', theirs)).toBe(true);
    expect(verifyMosquittoHash('p4sS', theirs)).toBe(false);
    const ours = mosquittoHash('p4ss');
    expect(ours.split('$').slice(0, 3)).toEqual(theirs.split('$').slice(0, 3));
    expect(verifyMosquittoHash('p4ss', ours)).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('reading and classifying statuses', () => {
  const f = loadInventoryBytes(Buffer.from(inv('status: { broker: "mqtts://m:8883", caFile: ca.pem }\n')), 'f.yaml');
  const d = f.active[0];
  const now = new Date('2026-12-02T06:00:00Z');
  // the broker received the status `agoSec` before `now` (with the fleet's expiry: 1800 s)
  const arrived = (agoSec: number): Map<string, Arrival> => new Map([[d.id, arrivalOf({ retained: true, expiryLeftSec: 1800 - agoSec, receivedAt: now }, 1800)]]);
  const base: SummaryInput = {
    devices: [d],
    reports: new Map(),
    arrivals: arrived(60),
    ignored: { oversized: 0, malformed: 0, 'wrong-device': 0, 'unknown-device': 0 },
    k3s: f.k3s,
    now,
    periodSec: 900,
    staleSec: 1350,
    expirySec: 1800,
  };
  const rep = (over: Parameters<typeof simReport>[3]) => simReport(d.id, d.siteId, f.name, over);

  it('ignores oversized, malformed and mislabelled payloads', () => {
    expect(readStatus(Buffer.alloc(MAX_STATUS_BYTES + 1, 32), d.id)).toEqual({ ok: false, why: 'oversized' });
    expect(readStatus(Buffer.from('{"format":'), d.id)).toEqual({ ok: false, why: 'malformed' });
    expect(readStatus(Buffer.from(JSON.stringify({ ...rep({ time: '2026-12-02T06:00:00Z' }), uptimeSec: 'long' })), d.id)).toEqual({ ok: false, why: 'malformed' });
    expect(readStatus(Buffer.from(JSON.stringify(rep({ time: '2026-12-02T06:00:00Z' }))), 'other')).toEqual({ ok: false, why: 'wrong-device' });
  });

  it('a clock far behind the time the broker received the status is flagged, not called silent', () => {
    const s = classify(d, rep({ time: '2026-11-30T06:00:00Z' }), base);
    expect(s.bucket).toBe('upToDate');
    expect(s.receivedAt).toBe('2026-12-02T05:59:00Z');
    expect(s.attention).toMatch(/clock is 48h behind \(report time 2026-11-30T06:00:00Z, received 2026-12-02T05:59:00Z\)/);
  });

  it("how old a status is comes from the broker, not from the report's time", () => {
    // received 25 minutes ago but stamped just now (a clock ahead, or a back-dated-forward report): silent
    const old = classify(d, rep({ time: '2026-12-02T06:00:00Z' }), { ...base, arrivals: arrived(1500) });
    expect(old.bucket).toBe('silent');
    expect(old.attention).toMatch(/^silent for 25m \(last status received 2026-12-02T05:35:00Z.*broker refuses it.*clock is 25m ahead/);
    // received a minute ago, stamped an hour ago: current, with a clock note
    const fresh = classify(d, rep({ time: '2026-12-02T05:00:00Z' }), base);
    expect(fresh.bucket).toBe('upToDate');
    expect(fresh.attention).toMatch(/clock is 59m behind/);
  });

  it('a status without message expiry is never counted as current, whatever time it claims', () => {
    const none = new Map([[d.id, arrivalOf({ retained: true, expiryLeftSec: undefined, receivedAt: now }, 1800)]]);
    const s = classify(d, rep({ time: '2026-12-02T06:00:00Z' }), { ...base, arrivals: none });
    expect(s.bucket).toBe('silent');
    expect(s.receivedAt).toBeUndefined();
    expect(s.attention).toMatch(/no message expiry, so when it arrived is unknown and it is not counted as current/);
    // one published while we read arrived now, expiry or not
    expect(arrivalOf({ retained: false, receivedAt: now }, 1800)).toEqual({ at: now, expiry: 'none', leftSec: undefined });
    // more left than the fleet's expiry: the broker gives no arrival
    expect(arrivalOf({ retained: true, expiryLeftSec: 7200, receivedAt: now }, 1800)).toEqual({ expiry: 'longer', leftSec: 7200 });
  });

  it("a departed device: the alarm follows the broker's arrival, not the report's time", () => {
    const gone = { ...d, status: 'stolen' as const, revoked: { reason: 'stolen' as const, at: '2026-12-02T05:50:00Z' } };
    const backdated = rep({ time: '2026-12-01T00:00:00Z' });
    const at = (agoSec: number) => arrivalOf({ retained: true, expiryLeftSec: 1800 - agoSec, receivedAt: now }, 1800);
    // sent before the revoke: its last word, expires by itself
    expect(inactiveNote(gone, { report: backdated, arrival: at(900) }, now, 1800)).toEqual({ needsPerson: false, reason: expect.stringMatching(/leaves the broker by itself in 15m$/) });
    // back-dated, but received after the revoke: the broker still accepts it
    const late = inactiveNote(gone, { report: backdated, arrival: at(60) }, now, 1800);
    expect(late.needsPerson).toBe(true);
    expect(late.reason).toMatch(/reached the broker after that \(at 2026-12-02T05:59:00Z or later; its own time says 2026-12-01T00:00:00Z\): the broker still accepts its credential/);
    // no expiry: never leaves the broker, date unknown
    expect(inactiveNote(gone, { report: backdated, arrival: { expiry: 'none' } }, now, 1800).reason).toMatch(/never leaves the broker .*--clear-departed/);
    // a longer expiry, still there beyond the time the reporter's status would have gone
    const longAgo = { ...gone, revoked: { reason: 'stolen' as const, at: '2026-12-01T00:00:00Z' } };
    expect(inactiveNote(longAgo, { report: backdated, arrival: { expiry: 'longer', leftSec: 5000 } }, now, 1800).needsPerson).toBe(true);
    // a document that does not read is no excuse: it reached the broker after the revoke
    const junk = inactiveNote(gone, { unreadable: 'malformed', arrival: at(60) }, now, 1800);
    expect(junk.needsPerson).toBe(true);
    expect(junk.reason).toMatch(/its own time says unknown: its document is malformed\): the broker still accepts its credential/);
  });

  it('an expired certificate, a stuck first boot, a device seen before but gone now', () => {
    expect(classify(d, rep({ time: '2026-12-02T05:59:00Z', k3s: { version: f.k3s.version, certNotAfter: '2026-12-01T00:00:00Z' } }), base).attention).toMatch(/certificate expired/);
    const stuck = classify(d, rep({ time: '2026-12-02T05:59:00Z', firstboot: { step: 'k3s', state: 'running', at: '2026-12-02T03:00:00Z', error: '' } }), base);
    expect(stuck.bucket).toBe('firstBoot');
    expect(stuck.attention).toMatch(/first boot at step k3s for 3h/);
    const gone = classify(d, undefined, { ...base, lastSeen: new Map([[d.id, '2026-12-01T20:00:00Z']]) });
    expect(gone.bucket).toBe('silent');
    expect(gone.attention).toMatch(/last seen 2026-12-01T20:00:00Z/);
  });

  it("during a rollout a device is measured against its own ring's K3s version", () => {
    const k3s = { ...f.k3s, canaryVersion: 'v1.99.0+k3s1' };
    const at = { time: '2026-12-02T05:59:00Z' };
    const canary = { ...d, canary: true };
    const stable = { ...d, canary: false };
    const onCanary = { ...at, k3s: { version: 'v1.99.0+k3s1', certNotAfter: '2027-12-01T00:00:00Z' } };
    const onStable = { ...at, k3s: { version: f.k3s.version, certNotAfter: '2027-12-01T00:00:00Z' } };
    expect(classify(canary, rep(onCanary), { ...base, k3s }).bucket).toBe('upToDate');
    expect(classify(stable, rep(onStable), { ...base, k3s }).bucket).toBe('upToDate');
    const lagging = classify(canary, rep(onStable), { ...base, k3s });
    expect(lagging.bucket).toBe('behind');
    expect(lagging.attention).toContain(`runs K3s ${f.k3s.version}, the inventory gives its canary ring v1.99.0+k3s1`);
  });
});

describe('the admin credential', () => {
  it('refuses short or repetitive passwords; hashes with the admin rounds; keeps a matching hash', async () => {
    expect(adminPasswordProblem('short-password')).toMatch(/is 14 characters long; use at least 20/);
    expect(adminPasswordProblem('abababababababababababab')).toMatch(/only 2 different characters/);
    expect(adminPasswordProblem('0123456789abcdef0123456789abcdef')).toBeUndefined();
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-admin-'));
    const passwd = path.join(dir, 'passwd');
    await expect(adminHash('edgeforge-admin', undefined, passwd)).rejects.toThrow(/has no line for the admin user "edgeforge-admin": give its password once/);
    await expect(adminHash('edgeforge-admin', { password: 'short', from: 'test' }, passwd)).rejects.toThrow(/\(test\) is 5 characters long/);
    const made = await adminHash('edgeforge-admin', { password: '0123456789abcdef0123456789abcdef', from: 'test' }, passwd);
    expect(made.source).toBe('password');
    expect(mosquittoHashIterations(made.hash)).toBe(ADMIN_PBKDF2_ITERATIONS);
    writeFileSync(passwd, `edgeforge-admin:${made.hash}\ndev:$7$101$AAAA$BBBB\n`);
    expect(await adminHash('edgeforge-admin', undefined, passwd)).toEqual({ hash: made.hash, source: 'kept', warnings: [] });
    expect((await adminHash('edgeforge-admin', { password: '0123456789abcdef0123456789abcdef', from: 'test' }, passwd)).source).toBe('kept');
    expect((await adminHash('edgeforge-admin', { hashFile: passwd }, path.join(dir, 'none'))).hash).toBe(made.hash);
    // a hash with device rounds is refused as given, and warned about when kept
    const weak = mosquittoHash('0123456789abcdef0123456789abcdef');
    writeFileSync(passwd, `edgeforge-admin:${weak}\n`);
    await expect(adminHash('edgeforge-admin', { hashFile: passwd }, path.join(dir, 'none'))).rejects.toThrow(/uses 101 PBKDF2 rounds/);
    expect((await adminHash('edgeforge-admin', undefined, passwd)).warnings[0]).toMatch(/uses 101 PBKDF2 rounds .*--password-file/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('the plan says whether status reporting is on', () => {
  it('off without `status:`, on with the derived numbers', async () => {
    const { renderPlanMarkdown, renderPlanJson } = await import('../../scripts/render/plan/plan.ts');
    const off = loadInventoryBytes(Buffer.from(inv('')), 'f.yaml');
    expect(renderPlanMarkdown(off)).toMatch(/## \d+\. Fleet status\n\n- Status reporting is off/);
    const on = loadInventoryBytes(Buffer.from(inv('status: { broker: "mqtts://m.example:8883", caFile: ca.pem, period: 15m }\n')), 'f.yaml');
    const md = renderPlanMarkdown(on);
    expect(md).toContain('`mqtts://m.example:8883`');
    expect(md).toContain('Every 15m');
    expect(md).toContain(`${(3 * 96).toLocaleString('en-US')} reports a day for 3 active device(s)`);
    expect(md).toContain('expires 30 minutes after it is sent');
    expect(JSON.parse(renderPlanJson(on)).status).toHaveLength(4);
  });
});
