// The plan's fleet-status section: derived from the inventory's `status:` block (or its absence).
import type { Fleet } from '../../inventory/fleet.ts';
import { STATUS_REPORTER_MEMORY_MAX_MIB } from '../status/limits.ts';

export function statusPlanLines(fleet: Fleet): string[] {
  const cfg = fleet.status;
  if (!cfg)
    return [
      'Status reporting is off: the inventory has no `status:` block, so no device gets the reporter and `edgeforge status` has nothing to read. Add `status: {broker: mqtts://HOST:8883, caFile: FILE}` to turn it on (docs/status.md).',
    ];
  const n = fleet.active.length;
  const perDay = Math.round((n * 86400) / cfg.periodSec);
  const perSec = n / cfg.periodSec;
  // a rate that reads: per second once there is more than one a second, else the mean gap between reports
  const rate = perSec > 1 ? `about ${perSec < 10 ? perSec.toFixed(1) : Math.round(perSec)} per second` : `on average one every ${(1 / Math.max(perSec, 1 / cfg.periodSec)).toFixed(1)} s`;
  return [
    `Devices publish their status outbound to \`${cfg.broker.url}\` (MQTT v5 over TLS, the broker's CA from \`${cfg.caFile}\` pinned), each with its own broker user allowed to write only \`${cfg.fleetTopic}/<region>/<site>/<device>/status\`; no inbound port.`,
    `Every ${cfg.period} (a fixed per-device offset inside the period) and at each first-boot milestone: ${perDay.toLocaleString('en-US')} reports a day for ${n} active device(s), ${rate} at the broker. A retained status expires ${cfg.expirySec / 60} minutes after it is sent, so a silent device's status does not look fresh.`,
    `The reporter is a oneshot systemd unit (no resident daemon), capped at ${STATUS_REPORTER_MEMORY_MAX_MIB} MiB (MemoryMax) while it runs.`,
    `Revoked, lost, stolen, retired and replaced devices have no broker user: \`edgeforge status broker-config\` writes users and ACL for the ${n} active device(s) only.`,
  ];
}
