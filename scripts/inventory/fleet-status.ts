// The fleet's status settings, resolved once from the inventory's `status:` block (docs/status.md) into
// Fleet.status: where the broker is, the topic of each device, the report period and how long a retained status
// lives. Every reader (the build's status stage, the plan, `edgeforge status`, the broker's configuration) takes
// them from there. Pure.
import type { StatusSettings } from './schema.ts';
import { industryPreset, presetSource } from './industry.ts';
import { parseBrokerUrl, type BrokerAddress } from './broker-url.ts';

export interface StatusConfig {
  broker: BrokerAddress;
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

/**
 * The fleet's status settings, or undefined when the inventory has no `status:` (reporting off). For
 * inventory/resolve.ts, once: everything else reads Fleet.status. The schema has checked the broker URL.
 */
export function resolveFleetStatus(s: StatusSettings | undefined, fleet: { name: string; industry: string }): StatusConfig | undefined {
  if (!s) return undefined;
  const broker = parseBrokerUrl(s.broker);
  if (!broker) throw new Error(`status.broker "${s.broker}" passed the schema but is not a broker URL`);
  const period = s.period ?? industryPreset(fleet.industry).statusPeriod;
  const periodSec = periodSeconds(period);
  const prefix = s.topicPrefix ?? 'edgeforge';
  return {
    broker,
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
export function deviceTopic(cfg: StatusConfig, d: { region: string; site: string; id: string }): string {
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
