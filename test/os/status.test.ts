// `edgeforge status` on A/B devices: a rollback of the ring's release needs a person (held back after two), a
// device on another release than its ring's is behind, a trial in progress is neither; the text says so.
import { describe, expect, it } from 'vitest';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { osFleetInventory } from '../../scripts/testkit/os-fleet.ts';
import { summarize } from '../../scripts/fleet-status/summary.ts';
import { statusText } from '../../scripts/fleet-status/format.ts';
import type { StatusReport } from '../../scripts/fleet-status/report.ts';

const SHA = 'a'.repeat(64);
const rel = { 'uefi-gpt': { file: 'x.raucb', sha256: SHA, baseImageSha256: SHA } };
const fleet = loadInventoryBytes(Buffer.from(osFleetInventory({ os: { version: '2026.12.1', canaryVersion: '2027.01.0', releases: { '2026.12.1': rel, '2027.01.0': rel } } })), 'fleet.yaml');
const now = new Date('2026-01-03T03:00:00Z');

function report(id: string, site: string, os: Partial<NonNullable<StatusReport['os']>>): StatusReport {
  return {
    format: 'edgeforge-status/1',
    device: id,
    fleet: 'acme',
    site,
    time: '2026-01-03T02:59:00Z',
    firstboot: { step: 'end', state: 'done', at: '2026-01-01T00:00:00Z', error: '' },
    lastError: '',
    applied: { bundleSha256: '', at: '' },
    gitops: { revision: 'unknown', ready: 'unknown' },
    k3s: { version: 'unknown', certNotAfter: '' },
    dataVolume: { state: 'unlocked', since: '', detail: '' },
    disk: { freeMiB: 1000 },
    uptimeSec: 100,
    os: { slot: 'A', version: '2026.12.1', slots: { A: '2026.12.1', B: '' }, trial: { slot: '', version: '', at: '' }, rollback: { version: '', at: '', count: 0, reason: '' }, note: '', ...os },
  };
}

describe('fleet status of A/B devices', () => {
  it("shows a rollback of the ring's release, the devices behind their ring, and leaves a trial alone", () => {
    const reports = new Map<string, StatusReport>([
      // canary: 2027.01.0 came back twice
      [
        'plant-a-001',
        report('plant-a-001', 'eu/plant-a', { rollback: { version: '2027.01.0', at: '2026-01-03T02:40:00Z', count: 2, reason: 'health check: edgeforge-nftables.service failed (exit-code)' } }),
      ],
      // stable: on its ring's release
      ['plant-b-001', report('plant-b-001', 'eu/plant-b', {})],
      // stable: still on an older release
      ['plant-b-002', report('plant-b-002', 'eu/plant-b', { version: '2026.06.0', slots: { A: '2026.06.0', B: '' } })],
    ]);
    const arrivals = new Map([...reports.keys()].map((id) => [id, { at: new Date('2026-01-03T02:59:30Z'), expiry: 'fleet' as const, leftSec: 1700 }]));
    const summary = () =>
      summarize({
        devices: fleet.active,
        reports,
        arrivals,
        ignored: { oversized: 0, malformed: 0, 'wrong-device': 0, 'unknown-device': 0 },
        k3s: fleet.k3s,
        os: fleet.os,
        now,
        periodSec: 900,
        staleSec: 1350,
        expirySec: 1800,
      });
    const s = summary();
    const why = new Map(s.attention.map((a) => [a.id, a.reason]));
    expect(why.get('plant-a-001')).toContain(
      'OS 2027.01.0 rolled back 2 time(s) in a row (last 2026-01-03T02:40:00Z): health check: edgeforge-nftables.service failed (exit-code); it runs 2026.12.1 in slot A — held back: fix the cause, then `sudo edgeforge-os-update retry` on the device',
    );
    expect(why.get('plant-b-002')).toContain('runs OS 2026.06.0 (slot A), the inventory gives its stable ring 2026.12.1 (it installs it in its next maintenance window)');
    expect(why.has('plant-b-001')).toBe(false);
    expect(statusText({ ...s, broker: 'mqtts://b', manifest: true })).toContain(
      'plant-a-001  behind      runs OS 2026.12.1 (slot A), the inventory gives its canary ring 2027.01.0; OS 2027.01.0 rolled back 2 time(s)',
    );
    // the canary device on trial of its ring's release: not behind
    reports.set('plant-a-001', report('plant-a-001', 'eu/plant-a', { trial: { slot: 'B', version: '2027.01.0', at: '2026-01-03T02:50:00Z' } }));
    const t = summary();
    expect(t.attention.some((a) => a.id === 'plant-a-001')).toBe(false);
  });
});
