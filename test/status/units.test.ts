// The pure parts of fleet status: the inventory block's errors, Mosquitto's $7$ hashes (both ways with the
// real mosquitto_passwd), reading statuses, and classifying a device.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tool } from '../../scripts/testkit/tools.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { mosquittoHash, verifyMosquittoHash } from '../../scripts/keys/mosquitto-passwd.ts';
import { readStatus, MAX_STATUS_BYTES } from '../../scripts/status/report.ts';
import { classify, type SummaryInput } from '../../scripts/status/summary.ts';
import { simReport } from '../../scripts/status/simulate.ts';
import { statusConfig, deviceTopic } from '../../scripts/inventory/status.ts';

const inv = (status: string) => generateInventory(3, { name: 'units' }) + status;

describe('inventory status block', () => {
  it('is optional; given, it derives broker, topic and expiry', () => {
    expect(statusConfig(loadInventoryBytes(Buffer.from(inv('')), 'f.yaml'))).toBeUndefined();
    const f = loadInventoryBytes(Buffer.from(inv('status: { broker: "mqtts://mqtt.example.com", caFile: ca.pem, period: 30m }\n')), 'f.yaml');
    const c = statusConfig(f)!;
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
  const base: SummaryInput = { devices: [d], reports: new Map(), ignored: { oversized: 0, malformed: 0, 'wrong-device': 0, 'unknown-device': 0 }, k3s: f.k3s, now, periodSec: 900, staleSec: 1350, expirySec: 1800 };
  const rep = (over: Parameters<typeof simReport>[3]) => simReport(d.id, d.siteId, f.name, over);

  it('ignores oversized, malformed and mislabelled payloads', () => {
    expect(readStatus(Buffer.alloc(MAX_STATUS_BYTES + 1, 32), d.id)).toEqual({ ok: false, why: 'oversized' });
    expect(readStatus(Buffer.from('{"format":'), d.id)).toEqual({ ok: false, why: 'malformed' });
    expect(readStatus(Buffer.from(JSON.stringify({ ...rep({ time: '2026-12-02T06:00:00Z' }), uptimeSec: 'long' })), d.id)).toEqual({ ok: false, why: 'malformed' });
    expect(readStatus(Buffer.from(JSON.stringify(rep({ time: '2026-12-02T06:00:00Z' }))), 'other')).toEqual({ ok: false, why: 'wrong-device' });
  });

  it('a clock far behind (older than the broker keeps a status) is flagged, not called silent', () => {
    const s = classify(d, rep({ time: '2026-11-30T06:00:00Z' }), base);
    expect(s.bucket).toBe('upToDate');
    expect(s.attention).toMatch(/clock is at least \S+ behind/);
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
