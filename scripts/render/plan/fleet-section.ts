// Sections "Fleet" and "Network" of the plan: profiles, regions, site classes, then the firewall's inbound rules
// and the outbound firewall request, each aggregated so that a table has as many rows as the fleet has kinds
// of thing, not devices.
import type { PlanData } from './model.ts';
import { NFTABLES_FILE } from '../../device/layout.ts';
import { hostsText, inboundRows, outboundRows, regionRows, siteClasses } from './aggregate.ts';
import { names, table } from './md.ts';

export function fleetSection(p: PlanData): string[] {
  const o: string[] = [];
  o.push('### Devices per spec', '');
  o.push(
    table(
      ['profile', 'board', 'RAM (nominal / usable)', 'storage', 'base image', 'data-volume cipher', 'devices', 'roles'],
      p.specs.map((s) => [
        s.profile,
        s.board,
        `${s.ramMiB} / ${s.usableRamMiB} MiB`,
        s.storage,
        s.layout,
        s.encryptionCipher,
        s.devices,
        Object.entries(s.roles)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ') || '-',
      ]),
    ),
    '',
  );
  o.push('### Sites per region', '');
  o.push(
    table(
      ['region', 'sites', 'devices', 'canary sites', 'multi-node sites', 'encrypted sites', 'with a registry mirror'],
      regionRows(p).map((r) => [r.region, r.sites, r.devices, names(r.canary, 2, '-'), r.multiNode, r.encrypted, r.mirrored]),
    ),
    '',
  );
  o.push('### Site classes', '');
  o.push('Sites with the same cluster shape, network, encryption, registry mirror and firewall form one class (every site is listed in the appendix and in `--format json`).', '');
  o.push(
    table(
      ['class', 'sites', 'devices', 'K3s', 'network', 'encryption', 'registry mirror', 'SSH from', 'other inbound', 'e.g.'],
      siteClasses(p).map((c, i) => [
        `${String.fromCharCode(65 + (i % 26))}${i >= 26 ? Math.floor(i / 26) : ''}`,
        c.sites.length,
        c.devices,
        c.k3s,
        c.network,
        c.encryption,
        c.mirror,
        c.ssh,
        c.inbound,
        names(
          c.sites.map((s) => `${s.id}${s.canary ? ' (canary)' : ''}`),
          2,
        ),
      ]),
    ),
    '',
  );
  return o;
}

export function networkSection(p: PlanData): string[] {
  const o: string[] = [];
  o.push(p.exposure.text, '');
  o.push('### Inbound: what the firewall accepts', '');
  o.push(
    `What each device's firewall (\`${NFTABLES_FILE}\`, input policy drop) accepts besides replies to its own connections and loopback, rendered from the same rule list as the firewall; one row per rule, with how many sites and devices have it.`,
    '',
  );
  o.push(
    table(
      ['protocol', 'ports', 'from', 'why', 'sites', 'devices'],
      inboundRows(p).map((r) => [r.proto, r.ports, r.from, r.why, r.sites, r.devices]),
    ),
    '',
  );
  o.push('### Outbound: what the devices contact (the firewall request)', '');
  o.push(
    `Every connection the devices open, at first boot and after, derived from the inventory (K3s install ${p.k3s.installMode}${p.k3s.installMode === 'airgap' ? ': K3s, its images and the pinned image archives come from the disk image, nothing from the internet' : ''}). Nothing else needs a route out. Per site: the appendix and \`sites[].egress\` in \`--format json\`.`,
    '',
  );
  o.push(
    table(
      ['host', 'port', 'when', 'why', 'sites', 'devices'],
      outboundRows(p).map((r) => [hostsText(r.hosts), r.port, r.when, r.why, r.sites, r.devices]),
    ),
    '',
  );
  return o;
}
