// The decisions the device count drives (Git mirror, registry cache, canary share, broker sizing) and the status
// rate, checked against the fleet they are computed from: the expectation is counted here from the inventory, on
// both sides of each threshold — and the broker's measured rate against the one file that records it.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { planData, renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { BROKER_MEASURED, BROKER_REPORTS_PER_SEC, CANARY_MAX_PERCENT, CANARY_MIN_PERCENT, GIT_MIRROR_AT, REGISTRY_CACHE_AT } from '../../scripts/render/plan/decisions.ts';
import { statusPlanLines } from '../../scripts/render/plan/status-section.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';

const withStatus = (t: string, period: string) => t.replace(/^admins:/m, `status: { broker: "mqtts://mqtt.acme.example:8883", caFile: ca.pem, period: ${period} }\nadmins:`);
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'inv.yaml');
/** every site canary: true (the generator marks the first) */
const allCanary = (t: string) => t.replace(/^( {6}[a-z]+-[a-z]+-\d{3}:\n)(?! {8}canary)/gm, '$1        canary: true\n');

const active = (f: Fleet) => f.devices.filter((d) => d.status === 'active');
const fluxAt = (f: Fleet, site: string) => active(f).filter((d) => d.siteId === site && d.cluster.kind !== 'multi-node-agent').length;
const decision = (f: Fleet, name: string) => planData(f).decisions.find((d) => d.decision === name)!;

describe('decisions the device count drives, against the fleet', () => {
  const fleets: [string, Fleet][] = [
    ['the example fleet', load(readFileSync(EXAMPLE, 'utf8'))],
    ['59 devices (a site one short of the Git mirror threshold)', load(generateInventory(59))],
    ['60 devices (that site at the threshold)', load(generateInventory(60))],
    ['2,000 devices', load(generateInventory(2000))],
  ];
  for (const [name, f] of fleets)
    it(`Git mirror and registry cache: ${name}`, () => {
      const git = f.sites.filter((s) => fluxAt(f, s.id) >= GIT_MIRROR_AT);
      const gitHave = git.filter((s) => f.inventory.gitops.mirrors?.[s.id]);
      const g = decision(f, 'a read-only Git mirror at the site');
      expect(g.here).toBe(`${git.length} of ${f.sites.length} site(s) qualify; ${gitHave.length} have one`);
      expect(g.needsPerson).toBe(gitHave.length < git.length);
      const reg = f.sites.filter((s) => active(f).filter((d) => d.siteId === s.id).length >= REGISTRY_CACHE_AT);
      const regHave = reg.filter((s) => active(f).some((d) => d.siteId === s.id && d.registryMirror));
      const r = decision(f, 'a registry pull-through cache at the site');
      expect(r.here).toBe(`${reg.length} of ${f.sites.length} site(s) qualify; ${regHave.length} have one`);
      expect(r.action === 'nothing').toBe(regHave.length === reg.length);
      expect(renderPlanMarkdown(f)).toContain(`| ${g.decision} | ≥ ${GIT_MIRROR_AT} Flux devices at a site | `);
    });

  it('the Git mirror threshold moves with one device', () => {
    const q = (f: Fleet) => f.sites.filter((s) => fluxAt(f, s.id) >= GIT_MIRROR_AT).length;
    const [a, b] = [fleets[1][1], fleets[2][1]];
    expect(q(b)).toBe(q(a) + 1);
    expect(decision(b, 'a read-only Git mirror at the site').here).toMatch(new RegExp(`^${q(b)} of `));
  });

  it('the canary share: inside the bounds, too small, too large', () => {
    const share = (f: Fleet) => (100 * active(f).filter((d) => d.canary).length) / active(f).length;
    const ok = load(generateInventory(2000));
    expect(share(ok)).toBeGreaterThanOrEqual(CANARY_MIN_PERCENT);
    expect(share(ok)).toBeLessThanOrEqual(CANARY_MAX_PERCENT);
    expect(decision(ok, "the canary ring's size").here).toContain(`${active(ok).filter((d) => d.canary).length} of ${active(ok).length} devices (${share(ok).toFixed(1)}%`);
    expect(decision(ok, "the canary ring's size").action).toBe('nothing');
    const small = load(generateInventory(5000));
    expect(share(small)).toBeLessThan(CANARY_MIN_PERCENT);
    expect(decision(small, "the canary ring's size").action).toMatch(/^mark more sites/);
    const large = load(allCanary(generateInventory(2000)));
    expect(share(large)).toBeGreaterThan(CANARY_MAX_PERCENT);
    expect(decision(large, "the canary ring's size")).toMatchObject({ action: 'mark fewer sites `canary: true`', needsPerson: true });
  });

  it('broker sizing and status messages per second follow the device count and the period', () => {
    for (const [n, period, sec] of [
      [2000, '1m', 60],
      [5000, '1m', 60],
      [14, '15m', 900],
    ] as const) {
      const f = load(withStatus(n === 14 ? readFileSync(EXAMPLE, 'utf8') : generateInventory(n), period));
      const perSec = active(f).length / sec;
      const b = decision(f, 'status broker sizing');
      expect(b.here).toBe(`${active(f).length.toLocaleString('en-US')} devices every ${period}: ${perSec.toFixed(2)} reports/s, ${active(f).length.toLocaleString('en-US')} retained statuses`);
      expect(b.needsPerson).toBe(perSec > BROKER_REPORTS_PER_SEC);
      for (const l of planData(f).load) expect(l.metrics.statusPerSec.value).toBe(perSec.toFixed(2));
      // the status section's rate reads at every scale: per second above one a second, else the gap between reports
      const line = statusPlanLines(f)[1];
      if (perSec > 1) expect(line).toContain(`about ${perSec < 10 ? perSec.toFixed(1) : Math.round(perSec)} per second at the broker`);
      else expect(line).toContain(`on average one every ${(1 / perSec).toFixed(1)} s at the broker`);
      expect(line).not.toMatch(/every 0\.0 s/);
    }
    expect(decision(load(generateInventory(2000)), 'status broker sizing')).toBeUndefined();
  });

  it("the broker's measured rate is the one BENCHMARKS.md records", () => {
    const bench = readFileSync('BENCHMARKS.md', 'utf8');
    expect(bench).toContain(`${BROKER_MEASURED.devices.toLocaleString('en-US')} devices published with their own credentials over TLS in ${BROKER_MEASURED.seconds} s.`);
    expect(BROKER_MEASURED.where).toMatch(/^BENCHMARKS\.md, "Fleet status"/);
    expect(bench).toContain('## Fleet status (`npm run bench:status`)');
  });
});
