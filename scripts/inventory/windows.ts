// Maintenance windows per site (docs/day2.md): the nearest of site, region and defaults that
// declares one, else the default for the fleet's industry in the site's own time zone. Upgrade Plans and
// the certificate-renewal timer run only inside it.
import type { Inventory, MaintenanceWindowInput, Weekday } from './schema.ts';
import type { PathKey } from './problems.ts';
import { INDUSTRY_PRESETS, industryKey } from './industry.ts';

export interface MaintenanceWindow {
  days: Weekday[];
  start: string;
  end: string;
  timeZone: string;
  /** where it came from, for the plan: "site", "region kr-south", "defaults", "industry manufacturing" */
  source: string;
}

/** The documented defaults (docs/day2.md#maintenance-windows): each industry preset's window (inventory/industry.ts). */
export const INDUSTRY_WINDOWS: Record<string, { days: Weekday[]; start: string; end: string; why: string }> = Object.fromEntries(Object.entries(INDUSTRY_PRESETS).map(([k, p]) => [k, p.window]));

export const industryWindowKey = industryKey;

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** How long the window is open from its start: a window whose end is before its start wraps past midnight. */
export function windowMinutes(w: Pick<MaintenanceWindow, 'start' | 'end'>): number {
  return (minutes(w.end) - minutes(w.start) + 24 * 60) % (24 * 60);
}

/**
 * Minutes from the start that stay on the start's own day when the window wraps past midnight on some days only:
 * the upgrade controller counts the hours after midnight to the day they fall on (its window is kured's), so
 * "sat 23:00-03:00" is Saturday 23:00-24:00 and Saturday 00:00-03:00, never Sunday morning.
 */
export function windowMinutesOnStartDay(w: Pick<MaintenanceWindow, 'start' | 'end' | 'days'>): number {
  const len = windowMinutes(w);
  return w.days.length === 7 || minutes(w.end) >= minutes(w.start) ? len : 24 * 60 - minutes(w.start);
}

export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Problems of one declared window, as [path, message] (path relative to the window). */
export function windowProblems(w: MaintenanceWindowInput): [PathKey[], string][] {
  const out: [PathKey[], string][] = [];
  if (w.start === w.end) out.push([['end'], `the maintenance window ${w.start}-${w.end} is empty: end must differ from start (a window may wrap past midnight, like 23:00-03:00)`]);
  if (!validTimeZone(w.timeZone)) out.push([['timeZone'], `"${w.timeZone}" is not an IANA time zone (like Europe/Berlin or Etc/UTC)`]);
  return out;
}

/** The window in force at a site: declared (site > region > defaults) or the industry's default in the site's time zone. */
export function siteWindow(inv: Pick<Inventory, 'fleet' | 'defaults' | 'regions'>, region: string, site: string, siteTimezone: string): MaintenanceWindow {
  const r = inv.regions[region];
  const s = r?.sites[site];
  const declared: [MaintenanceWindowInput | undefined, string][] = [
    [s?.maintenanceWindow, 'site'],
    [r?.maintenanceWindow, `region ${region}`],
    [inv.defaults?.maintenanceWindow, 'defaults'],
  ];
  for (const [w, source] of declared) if (w) return { days: [...w.days], start: w.start, end: w.end, timeZone: w.timeZone, source };
  const key = industryWindowKey(inv.fleet.industry);
  const d = INDUSTRY_WINDOWS[key];
  return {
    days: [...d.days],
    start: d.start,
    end: d.end,
    timeZone: siteTimezone,
    source: key === 'other' ? `industry default (${JSON.stringify(inv.fleet.industry)} has no window of its own)` : `industry ${key}`,
  };
}

export function windowText(w: Pick<MaintenanceWindow, 'days' | 'start' | 'end' | 'timeZone'>): string {
  const days = w.days.length === 7 ? 'every day' : w.days.join(',');
  return `${days} ${w.start}-${w.end} ${w.timeZone}`;
}
