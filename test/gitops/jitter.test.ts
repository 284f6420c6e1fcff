import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { devicePollInterval, formatDuration, parseDuration } from '../../scripts/render/flux/index.ts';
import { JITTER_FRACTION } from '../../scripts/render/flux/jitter.ts';
import { generatedFleet } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['ssh-keygen'], 'test/gitops/jitter.test.ts');

describe.runIf(HAVE_TOOLS)('per-device poll jitter', () => {
  it('parses and formats Go-style durations', () => {
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('90s')).toBe(90);
    expect(() => parseDuration('5 minutes')).toThrow(/not a duration/);
    expect(formatDuration(317)).toBe('5m17s');
    expect(formatDuration(300)).toBe('5m');
    expect(formatDuration(3600)).toBe('1h');
    expect(formatDuration(0)).toBe('0s');
    for (const s of [1, 59, 61, 299, 359, 3601, 7322]) expect(parseDuration(formatDuration(s))).toBe(s);
  });

  it('is deterministic per device id and never polls more often than asked', () => {
    const a = devicePollInterval('ulsan1-line1-001', '5m');
    expect(devicePollInterval('ulsan1-line1-001', '5m')).toEqual(a);
    expect(a.seconds).toBeGreaterThanOrEqual(300);
    expect(a.seconds).toBeLessThan(300 * (1 + JITTER_FRACTION));
    expect(parseDuration(a.text)).toBe(a.seconds);
  });

  it('spreads 10,000 devices evenly over the window', () => {
    const fleet = generatedFleet(10000, { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' });
    const offsets = fleet.active.map((d) => devicePollInterval(d.id, '5m').offsetSeconds);
    expect(offsets.length).toBe(10000);
    const window = 300 * JITTER_FRACTION; // 60 s
    expect(Math.min(...offsets)).toBe(0);
    expect(Math.max(...offsets)).toBe(window - 1);
    // 60 one-second buckets, ~167 devices each: none may be empty or hold more than twice its share
    const buckets = new Array(window).fill(0);
    for (const o of offsets) buckets[o]++;
    const expected = 10000 / window;
    for (const b of buckets) {
      expect(b).toBeGreaterThan(expected * 0.6);
      expect(b).toBeLessThan(expected * 1.5);
    }
    // neighbours in the inventory (same site, consecutive ids) do not share an interval
    const sameSite = fleet.sites[0].devices.map((d) => devicePollInterval(d.id, '5m').seconds);
    expect(new Set(sameSite).size).toBeGreaterThan(sameSite.length * 0.4);
  });
});
