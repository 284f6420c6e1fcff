// Fleet status settings derived from the inventory's `status:` block (docs/status.md): where the
// broker is, the topic of each device, the report period and how long a retained status lives. Pure.
import type { Fleet, ResolvedDevice } from './fleet.ts';
import type { StatusSettings } from './schema.ts';
import { industryPreset, presetSource } from './industry.ts';

export interface StatusConfig {
  broker: { host: string; port: number; url: string };
  /** the inventory's caFile (relative to the inventory file) */
  caFile: string;
  period: string;
  /** "status.period", or the industry preset's */
  periodSource: string;
  periodSec: number;
  /** MQTT v5 message-expiry-interval of every report: two periods, so one missed report does not expire it */
  expirySec: number;
  prefix: string;
  adminUser: string;
  /** "<prefix>/<fleet>" */
  fleetTopic: string;
}

export function periodSeconds(p: string): number {
  const m = /^(\d+)([mh])$/.exec(p);
  if (!m) throw new Error(`bad status period "${p}"`);
  return Number(m[1]) * (m[2] === 'h' ? 3600 : 60);
}

/** The fleet's status settings, or undefined when the inventory has no `status:` (reporting off). */
export function statusConfig(fleet: Pick<Fleet, 'name' | 'inventory' | 'industry'>): StatusConfig | undefined {
  const s = fleet.inventory.status as StatusSettings | undefined;
  if (!s) return undefined;
  const m = /^mqtts:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(s.broker)!;
  const host = m[1].replace(/^\[|\]$/g, '');
  const port = m[2] ? Number(m[2]) : 8883;
  const period = s.period ?? industryPreset(fleet.industry).statusPeriod;
  const periodSec = periodSeconds(period);
  const prefix = s.topicPrefix ?? 'edgeforge';
  return {
    broker: { host, port, url: `mqtts://${m[1]}:${port}` },
    caFile: s.caFile,
    period,
    periodSource: s.period ? 'status.period' : presetSource(fleet.industry),
    periodSec,
    expirySec: 2 * periodSec,
    prefix,
    adminUser: s.adminUser ?? 'edgeforge-admin',
    fleetTopic: `${prefix}/${fleet.name}`,
  };
}

/** "<prefix>/<fleet>/<region>/<site>/<device>/status": every part is a DNS label, so no MQTT wildcard or "/" can sneak in. */
export function deviceTopic(cfg: StatusConfig, d: Pick<ResolvedDevice, 'region' | 'site' | 'id'>): string {
  return `${cfg.fleetTopic}/${d.region}/${d.site}/${d.id}/status`;
}

/** What `edgeforge status` subscribes to: every device's status topic of the fleet. */
export function fleetStatusFilter(cfg: StatusConfig): string {
  return `${cfg.fleetTopic}/+/+/+/status`;
}

/** The CLI's own sentinel topic: published after subscribing, it arrives after every retained status (one connection, in order). */
export function sentinelTopic(cfg: StatusConfig, nonce: string): string {
  return `${cfg.fleetTopic}/_cli/${nonce}`;
}
