// `edgeforge plan --appendix FILE`: the per-site and per-device detail the plan aggregates away — one row per
// site, per firewall rule of a site, per host a site contacts, per device. Long by design; the plan stays short.
import type { Fleet } from '../../inventory/fleet.ts';
import { planData } from './plan.ts';
import type { PlanData } from './model.ts';
import type { EgressInputs } from './egress.ts';
import { day2Plan } from './day2.ts';
import { configBlocks } from './k3s-section.ts';
import { table } from './md.ts';

const ALL = Number.POSITIVE_INFINITY;

export function appendixMarkdown(fleet: Fleet, p: PlanData): string {
  const windows = new Map(day2Plan(fleet).windows.map((w) => [w.site, w]));
  const o: string[] = [`# ${p.fleet.name} — plan appendix: every site and device`, '', 'The detail behind `edgeforge plan`, generated from the same inventory.', ''];
  o.push('## Sites', '');
  o.push(
    table(
      ['site', 'location', 'devices', 'K3s', 'network', 'encryption', 'registry mirror', 'SSH from', 'other inbound', 'window', 'offline'],
      p.sites.map((s) => {
        const w = windows.get(s.id);
        return [
          `${s.id}${s.canary ? ' (canary)' : ''}`,
          s.location,
          s.devices,
          s.cluster,
          s.network,
          s.encryption,
          s.registryMirror ?? '-',
          s.sshFrom,
          s.inbound || 'none',
          w ? `${w.window} (${w.source})` : '-',
          s.unlock,
        ];
      }),
      ALL,
    ),
    '',
  );
  o.push(
    '## A reboot while tang is unreachable',
    '',
    table(
      ['site', 'what happens', 'option'],
      p.sites.map((s) => [s.id, s.tangOutage.reboot, s.tangOutage.option]),
      ALL,
    ),
    '',
  );
  o.push('## Inbound ports per site', '', 'Devices of a site with the same rules share rows.', '');
  o.push(
    table(
      ['site', 'devices', 'protocol', 'ports', 'from', 'why'],
      p.ports.map((r) => [r.site, r.devices.length > 3 ? `${r.devices.slice(0, 2).join(', ')} … (${r.devices.length})` : r.devices.join(', '), r.proto, r.ports, r.from, r.why]),
      ALL,
    ),
    '',
  );
  o.push('## Outbound per site', '');
  o.push(
    table(
      ['site', 'host', 'port', 'when', 'why', 'devices'],
      p.sites.flatMap((s) => s.egress.map((e) => [s.id, e.host, e.port, e.when, e.why, e.devices ? e.devices.join(', ') : 'all'])),
      ALL,
    ),
    '',
  );
  o.push('## K3s config of every profile and role', '', ...configBlocks(p.k3s.profiles, true));
  o.push('## Devices', '');
  o.push(
    table(
      ['device', 'site', 'profile', 'role', 'address', 'encryption', 'Flux', 'ring'],
      p.devices.map((d) => [d.id, d.site, d.profile, d.role, d.address ?? 'dhcp', d.encryption, d.flux ? 'yes' : 'no', d.ring]),
      ALL,
    ),
    '',
  );
  return o.join('\n').trimEnd() + '\n';
}

export function renderPlanAppendix(fleet: Fleet, inp: EgressInputs = {}): string {
  return appendixMarkdown(fleet, planData(fleet, inp));
}
