// The fleet's `industry` as a preset of real settings (docs/plan.md, "Industry presets"): the maintenance
// window, the canary ring's default size, how often devices report, whether disk encryption is required, and
// how long a device may stay silent before `edgeforge status` asks for a person. Each is overridable in the
// inventory — the preset is only the lowest layer under defaults, region and site — and the plan shows every
// value with where it came from. An industry not listed gets `other`.
import type { Inventory, PolicyInput, Weekday } from './schema.ts';
import { WEEKDAYS } from './schema.ts';

export type EncryptionPolicy = 'required' | 'recommended';

export interface IndustryPreset {
  window: { days: Weekday[]; start: string; end: string; why: string };
  /** the canary ring's share of sites (percent) when the inventory marks no site `canary:` */
  canaryPercent: number;
  /** the status report period when `status.period` is not set */
  statusPeriod: string;
  /** a site without `encryption` (mode none) is refused (required) or reported as a risk (recommended) */
  encryption: EncryptionPolicy;
  /** how long a device may stay silent before `edgeforge status` says it needs a person */
  offlineTolerance: string;
  /** one line per setting: why this industry gets it */
  why: { canary: string; status: string; encryption: string; offline: string };
}

const EVERY_DAY: Weekday[] = [...WEEKDAYS];

export const INDUSTRY_PRESETS: Record<string, IndustryPreset> = {
  manufacturing: {
    window: { days: EVERY_DAY, start: '05:30', end: '06:30', why: "a factory line's early shift change" },
    canaryPercent: 10,
    statusPeriod: '15m',
    encryption: 'recommended',
    offlineTolerance: '1h',
    why: {
      canary: 'one line in ten first: a bad change stops one line, not a plant',
      status: 'a stopped line costs by the minute',
      encryption: 'plants are access-controlled',
      offline: 'a plant network is expected up; an hour of silence is a fault',
    },
  },
  retail: {
    window: { days: EVERY_DAY, start: '01:00', end: '06:00', why: 'a store outside opening hours' },
    canaryPercent: 5,
    statusPeriod: '30m',
    encryption: 'recommended',
    offlineTolerance: '12h',
    why: {
      canary: 'a few stores first out of many alike',
      status: 'many small sites, a shared broker',
      encryption: 'payment data stays in the payment terminals, not on these nodes',
      offline: 'stores power down and lose links overnight',
    },
  },
  logistics: {
    window: { days: EVERY_DAY, start: '03:00', end: '05:00', why: 'a warehouse between the night and morning waves' },
    canaryPercent: 10,
    statusPeriod: '15m',
    encryption: 'recommended',
    offlineTolerance: '24h',
    why: {
      canary: 'one depot in ten first',
      status: 'sorting runs around the clock',
      encryption: 'depots are fenced, but devices travel with vehicles',
      offline: 'yards and vehicles lose coverage for hours',
    },
  },
  energy: {
    window: { days: EVERY_DAY, start: '01:00', end: '05:00', why: 'an energy site at night, off the daily load peaks' },
    canaryPercent: 10,
    statusPeriod: '1h',
    encryption: 'required',
    offlineTolerance: '7d',
    why: {
      canary: 'one site in ten first',
      status: 'remote sites on metered or satellite links',
      encryption: 'unattended remote sites: theft is expected',
      offline: 'remote substations and wind parks are unreachable for days',
    },
  },
  healthcare: {
    window: { days: EVERY_DAY, start: '03:00', end: '04:00', why: "a hospital's fewest procedures, in the night" },
    canaryPercent: 5,
    statusPeriod: '5m',
    encryption: 'required',
    offlineTolerance: '1h',
    why: {
      canary: 'a few sites first: patient-facing changes go slowly',
      status: 'a silent device at a ward is found within minutes',
      encryption: 'patient data on the device: encryption at rest is required',
      offline: 'clinical networks are expected up',
    },
  },
  other: {
    window: { days: EVERY_DAY, start: '02:00', end: '05:00', why: 'the quietest hours of a generic site' },
    canaryPercent: 10,
    statusPeriod: '15m',
    encryption: 'recommended',
    offlineTolerance: '24h',
    why: {
      canary: 'one site in ten first',
      status: "the status block's long-standing default",
      encryption: 'recommended wherever a device can be carried off',
      offline: 'a day without a report is worth a look',
    },
  },
};

export function industryKey(industry: string): string {
  const k = industry.trim().toLowerCase();
  return k in INDUSTRY_PRESETS ? k : 'other';
}

export function industryPreset(industry: string): IndustryPreset {
  return INDUSTRY_PRESETS[industryKey(industry)];
}

/** "industry retail", or the fallback for an industry without a preset of its own */
export function presetSource(industry: string): string {
  const key = industryKey(industry);
  return key === 'other' && industry.trim().toLowerCase() !== 'other' ? `industry default (${JSON.stringify(industry)} has no preset of its own)` : `industry ${key}`;
}

/** "1h" -> 3600; "7d" -> 604800 */
export function toleranceSeconds(d: string): number {
  const m = /^(\d+)([mhd])$/.exec(d);
  if (!m) throw new Error(`bad duration "${d}"`);
  return Number(m[1]) * { m: 60, h: 3600, d: 86400 }[m[2] as 'm' | 'h' | 'd'];
}

export interface SitePolicy {
  encryption: EncryptionPolicy;
  encryptionSource: string;
  offlineTolerance: string;
  offlineToleranceSec: number;
  offlineSource: string;
}

/** The policy in force at a site: the nearest of site, region and defaults that states each key, else the preset. */
export function sitePolicy(inv: Pick<Inventory, 'fleet' | 'defaults' | 'regions'>, region: string, site: string): SitePolicy {
  const preset = industryPreset(inv.fleet.industry);
  const r = inv.regions[region];
  const layers: [PolicyInput | undefined, string][] = [
    [r?.sites[site]?.policy, 'site'],
    [r?.policy, `region ${region}`],
    [inv.defaults?.policy, 'defaults'],
  ];
  const pick = <K extends 'encryption' | 'offlineTolerance'>(k: K, fallback: string): [string, string] => {
    for (const [p, source] of layers) if (p?.[k] !== undefined) return [p[k] as string, source];
    return [fallback, presetSource(inv.fleet.industry)];
  };
  const [encryption, encryptionSource] = pick('encryption', preset.encryption);
  const [offlineTolerance, offlineSource] = pick('offlineTolerance', preset.offlineTolerance);
  return { encryption: encryption as EncryptionPolicy, encryptionSource, offlineTolerance, offlineToleranceSec: toleranceSeconds(offlineTolerance), offlineSource };
}

/**
 * The canary ring when the inventory marks no site `canary:` at all: the preset's share of the sites (or
 * `defaults.policy.canaryPercent`), at least one when the fleet has two sites or more, never every site —
 * taken one region at a time (each region's first site, then each region's second…) so every region has
 * canaries before any has two. An inventory that says `canary:` anywhere decides the ring alone.
 */
export function presetCanarySites(inv: Pick<Inventory, 'fleet' | 'defaults' | 'regions'>): { sites: Set<string>; percent: number; source: string } {
  const explicit = Object.values(inv.regions).some((r) => Object.values(r.sites).some((s) => s.canary !== undefined));
  const stated = inv.defaults?.policy?.canaryPercent;
  const percent = stated ?? industryPreset(inv.fleet.industry).canaryPercent;
  const source = explicit ? 'the inventory (canary: on sites)' : stated !== undefined ? 'defaults.policy.canaryPercent' : presetSource(inv.fleet.industry);
  if (explicit) return { sites: new Set(), percent, source };
  const perRegion = Object.entries(inv.regions).map(([r, reg]) => Object.keys(reg.sites).map((s) => `${r}/${s}`));
  const total = perRegion.reduce((a, x) => a + x.length, 0);
  const n = total < 2 || percent === 0 ? 0 : Math.min(total - 1, Math.max(1, Math.ceil((percent / 100) * total)));
  const order: string[] = [];
  for (let i = 0; order.length < total; i++) for (const sites of perRegion) if (sites[i]) order.push(sites[i]);
  return { sites: new Set(order.slice(0, n)), percent, source };
}
