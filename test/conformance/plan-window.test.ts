// The upgrade controller's window rule (kured's timewindow, which TimeWindowSpec.Contains uses), instant by
// instant, and that every window edgeforge writes into a Plan is one the controller can read and that opens
// exactly when the inventory says.
import { describe, expect, it } from 'vitest';
import { parseWindowTime, planWindowProblem, windowContains } from '../../scripts/conformance/plan-window.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { readFileSync } from 'node:fs';
import { sitePlans } from '../../scripts/render/day2/plans.ts';

const at = (iso: string) => new Date(iso);

describe("the controller's window", () => {
  it('reads the layouts kured tries, and nothing else', () => {
    expect(['05:30', '5:30', '05:30:59', '05', '3pm', '03pm', '11:30pm'].map(parseWindowTime)).toEqual([330, 330, 330, 300, 900, 900, 1410]);
    for (const bad of ['24:00', '5.30', '05:3', '3 pm', '3PM', 'noon', '']) expect(parseWindowTime(bad), bad).toBeUndefined();
  });

  it("is inside from start to end on a listed day, in the window's own time zone", () => {
    const w = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], startTime: '05:30', endTime: '06:30', timeZone: 'Asia/Seoul' };
    expect(windowContains(w, at('2026-12-07T20:29:00Z'))).toBe(false); // 05:29 KST
    expect(windowContains(w, at('2026-12-07T20:30:00Z'))).toBe(true); // 05:30
    expect(windowContains(w, at('2026-12-07T21:30:00Z'))).toBe(true); // 06:30
    expect(windowContains(w, at('2026-12-07T21:31:00Z'))).toBe(false);
  });

  it('wraps past midnight on the listed days only: days [sat] 22:00-04:00 is Saturday 00:00-04:00 and 22:00-24:00', () => {
    const w = { days: ['sat'], startTime: '22:00', endTime: '04:00', timeZone: 'Etc/UTC' };
    expect(windowContains(w, at('2026-12-12T23:00:00Z'))).toBe(true); // Sat 23:00
    expect(windowContains(w, at('2026-12-12T03:00:00Z'))).toBe(true); // Sat 03:00
    expect(windowContains(w, at('2026-12-12T12:00:00Z'))).toBe(false); // Sat noon
    expect(windowContains(w, at('2026-12-13T03:00:00Z'))).toBe(false); // Sun 03:00: not a listed day
    const every = { ...w, days: ['0', '1', '2', '3', '4', '5', '6'] };
    expect(windowContains(every, at('2026-12-13T03:00:00Z'))).toBe(true);
  });

  it('a window it cannot read is never open, and is named', () => {
    expect(planWindowProblem({ days: ['saturday', 'Sun', '6'], startTime: '22:00', endTime: '04:00', timeZone: 'Europe/Berlin' })).toBeUndefined();
    expect(planWindowProblem({ days: ['weekend'], startTime: '22:00', endTime: '04:00' })).toMatch(/days "weekend"/);
    expect(planWindowProblem({ days: ['sat'], startTime: '10 pm', endTime: '04:00' })).toMatch(/startTime "10 pm"/);
    expect(planWindowProblem({ days: ['sat'], startTime: '22:00', endTime: '04:00', timeZone: 'Mars/Olympus' })).toMatch(/timeZone/);
    expect(windowContains({ days: ['weekend'], startTime: '00:00', endTime: '23:59' }, at('2026-12-12T12:00:00Z'))).toBe(false);
  });

  it("the Plans edgeforge writes open exactly when the inventory's window does, across midnight too", () => {
    const text = readFileSync('inventory/example.yaml', 'utf8').replace(
      '        canary: true                 # gets GitOps changes first\n',
      '        canary: true                 # gets GitOps changes first\n        maintenanceWindow: { days: [sat, sun], start: "22:00", end: "04:00", timeZone: Asia/Seoul }\n',
    );
    const fleet = loadInventoryBytes(Buffer.from(text), 'x.yaml');
    for (const s of fleet.sites) {
      for (const p of sitePlans(s, fleet)) {
        const w = (p.spec as { window: { days: string[]; startTime: string; endTime: string; timeZone: string } }).window;
        expect(planWindowProblem(w), s.id).toBeUndefined();
        expect([w.startTime, w.endTime, w.timeZone, w.days.join(',')]).toEqual([s.window.start, s.window.end, s.window.timeZone, s.window.days.join(',')]);
      }
    }
    const canary = fleet.sites.find((s) => s.canary)!;
    const w = (sitePlans(canary, fleet)[0].spec as { window: Parameters<typeof windowContains>[0] }).window;
    expect(windowContains(w, at('2026-12-12T14:00:00Z'))).toBe(true); // Sat 23:00 KST
    expect(windowContains(w, at('2026-12-11T18:00:00Z'))).toBe(true); // Sat 03:00 KST
    expect(windowContains(w, at('2026-12-13T20:00:00Z'))).toBe(false); // Mon 05:00 KST
  });
});
