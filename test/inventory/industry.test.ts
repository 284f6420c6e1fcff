// The fleet's industry as a preset of real settings: each one changes what edgeforge does, each is overridable
// on defaults, a region or a site (the nearest wins), and an inventory that states a setting is not touched.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { INDUSTRY_PRESETS } from '../../scripts/inventory/industry.ts';
import { classify, type SummaryInput } from '../../scripts/fleet-status/summary.ts';
import { simReport } from '../../scripts/testkit/status-reports.ts';
import { InventoryError } from '../../scripts/util/errors.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'inv.yaml');
const industry = (t: string, i: string) => t.replace('  industry: manufacturing ', `  industry: ${i} `);

describe('industry presets', () => {
  it('every preset sets every setting, and the presets differ', () => {
    const keys = Object.keys(INDUSTRY_PRESETS);
    expect(keys).toEqual(['manufacturing', 'retail', 'logistics', 'energy', 'healthcare', 'other']);
    for (const setting of ['statusPeriod', 'offlineTolerance', 'encryption', 'canaryPercent'] as const) {
      expect(new Set(keys.map((k) => INDUSTRY_PRESETS[k][setting])).size, setting).toBeGreaterThan(1);
    }
  });

  it('encryption required (healthcare): a site without it is refused at its position; policy on the site lifts it', () => {
    const t = industry(example, 'healthcare');
    let err: InventoryError | undefined;
    try {
      load(t);
    } catch (e) {
      err = e as InventoryError;
    }
    expect(err).toBeInstanceOf(InventoryError);
    const line = t.split('\n').findIndex((l) => l.startsWith('        encryption: { mode: none }')) + 1;
    expect(err!.problems).toEqual([
      expect.objectContaining({
        line,
        message: expect.stringMatching(/^site "brno-warehouse-1" runs brno1-dock-001 without disk encryption, but encryption is required here \(industry healthcare\)/),
      }),
    ]);
    const lifted = load(t.replace('        encryption: { mode: none }', '        policy: { encryption: recommended }\n        encryption: { mode: none }'));
    expect(lifted.sites.find((s) => s.name === 'brno-warehouse-1')!.policy).toMatchObject({ encryption: 'recommended', encryptionSource: 'site' });
    // manufacturing only recommends it: the example loads
    expect(load(example).sites.every((s) => s.policy.encryption === 'recommended')).toBe(true);
  });

  it("the status period: the preset's unless status.period says otherwise", () => {
    const withStatus = (t: string, period = '') => t.replace(/^admins:/m, `status: { broker: "mqtts://m.example:8883", caFile: ca.pem${period} }\nadmins:`);
    expect(load(withStatus(industry(example, 'retail'))).status).toMatchObject({ period: '30m', periodSec: 1800, periodSource: 'industry retail' });
    expect(load(withStatus(example)).status).toMatchObject({ period: '15m', periodSource: 'industry manufacturing' });
    expect(load(withStatus(industry(example, 'retail'), ', period: 5m')).status).toMatchObject({ period: '5m', periodSource: 'status.period' });
  });

  it('offline tolerance cascades defaults > region > site, and decides when a silent device needs a person', () => {
    const t = industry(example, 'energy')
      .replace('        encryption: { mode: none }', '        encryption: { mode: tang, tang: [{ url: "http://tang.brno1.acme.example", thumbprint: Xr0p9Vb3fQ1yZ7kT2mW8sE5uH4jL6nC0aG1dR3iOqPs }] }')
      .replace('    timezone: Europe/Berlin\n', '    timezone: Europe/Berlin\n    policy: { offlineTolerance: 2h }\n')
      .replace('        location: Brno, CZ\n', '        location: Brno, CZ\n        policy: { offlineTolerance: 30m }\n');
    const f = load(t);
    const by = Object.fromEntries(f.sites.map((s) => [s.name, [s.policy.offlineTolerance, s.policy.offlineSource]]));
    expect(by).toEqual({
      'ulsan-plant-1': ['7d', 'industry energy'],
      'changwon-plant-2': ['7d', 'industry energy'],
      'stuttgart-plant-3': ['2h', 'region eu-central'],
      'brno-warehouse-1': ['30m', 'site'],
    });
    // reporting hourly, silent for 100 minutes: within stuttgart's 2h (a note), past brno's 30m (needs a person)
    const now = new Date('2026-12-02T06:00:00Z');
    // the broker received each report when it was sent (04:20): the status's age comes from the broker
    const arrivals = new Map(f.active.map((d) => [d.id, { at: new Date('2026-12-02T04:20:00Z'), expiry: 'fleet' as const }]));
    const input = (devices: typeof f.active): SummaryInput => ({
      devices,
      reports: new Map(),
      arrivals,
      ignored: { oversized: 0, malformed: 0, 'wrong-device': 0, 'unknown-device': 0 },
      k3s: f.k3s,
      now,
      periodSec: 3600,
      staleSec: 5400,
      expirySec: 7200,
      offlineToleranceSec: new Map(f.sites.map((s) => [s.id, s.policy.offlineToleranceSec])),
    });
    const hourAgo = (d: (typeof f.active)[number]) => simReport(d.id, d.siteId, f.name, { time: '2026-12-02T04:20:00Z' });
    const stu = f.active.find((d) => d.id === 'stuttgart3-asm-001')!;
    const brno = f.active.find((d) => d.id === 'brno1-dock-001')!;
    const a = classify(stu, hourAgo(stu), input([stu]));
    expect(a).toMatchObject({ bucket: 'silent', note: expect.stringContaining("within eu-central/stuttgart-plant-3's offline tolerance of 2h") });
    expect(a.attention).toBeUndefined();
    expect(classify(brno, hourAgo(brno), input([brno]))).toMatchObject({ bucket: 'silent', attention: expect.stringMatching(/^silent for 100m/) });
  });

  it("an inventory without policy or status keeps its rendered settings: only the industry's window and the preset canary pick are new", () => {
    // a generated fleet marks its canary site: the preset picks no ring there
    const g = load(generateInventory(200));
    expect(g.sites.filter((s) => s.canary).map((s) => s.canarySource)).toEqual(['site']);
    expect(g.sites.filter((s) => !s.canary).every((s) => s.canarySource === 'the inventory (canary: on sites)')).toBe(true);
  });
});
