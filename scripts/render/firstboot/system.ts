// The small system files the first-boot program installs: sysctls, the firewall, sshd policy, modules.
// Pure: derived from the device and its cluster peers in the fleet.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { PROTECT_KERNEL_SYSCTLS } from '../k3s/tuning.ts';
import { inboundRules, nftStatement, sshSources } from './firewall.ts';
import { NFTABLES_FILE } from '../../device/layout.ts';
import { systemdUnit } from '../systemd/unit.ts';

export function sysctlConf(): string {
  return ['# written by edgeforge: K3s runs with protect-kernel-defaults: true, and the kubelet exits unless these hold', ...PROTECT_KERNEL_SYSCTLS.map(([k, v]) => `${k} = ${v}`), ''].join('\n');
}

export function sshdConf(): string {
  return [
    '# written by edgeforge: key-only SSH with the pinned host key (sshd keeps the first value it reads)',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    'PermitEmptyPasswords no',
    '',
  ].join('\n');
}

export function modulesLoadConf(): string {
  return '# written by edgeforge: flannel-backend wireguard-native\nwireguard\n';
}

export function nftablesService(): string {
  return systemdUnit(['written by edgeforge: restores table inet edgeforge at boot (touches no other table)'], {
    Unit: { Description: 'edgeforge firewall (nftables table inet edgeforge)', DefaultDependencies: 'no', Before: 'network-pre.target', Wants: 'network-pre.target' },
    Service: { Type: 'oneshot', RemainAfterExit: 'yes', ExecStart: `/usr/sbin/nft -f ${NFTABLES_FILE}` },
    Install: { WantedBy: 'sysinit.target' },
  });
}

/**
 * Table inet edgeforge: input policy drop; established and loopback traffic, then exactly the rules of
 * inboundRules (firewall.ts), which the plan's port table shows too. The file replaces only this table
 * (never `flush ruleset`).
 */
export function nftablesRules(d: ResolvedDevice, fleet: Pick<Fleet, 'active' | 'k3s'>): string {
  const rules = inboundRules(d, fleet);
  const open = rules.filter((r) => r.proto === 'tcp' || r.proto === 'udp').map((r) => `${r.proto} ${r.ports.join(',')}`);
  const L: string[] = [
    '#!/usr/sbin/nft -f',
    `# edgeforge firewall for ${d.id}: replaces table inet edgeforge only; other tables (K3s's own rules) stay`,
    `# Inbound ports: ${open.join('; ')}${sshSources(d) ? '' : ' (SSH closed: no managementSubnet, no ssh.allowFrom)'}. The device pulls its state (Flux).`,
    'table inet edgeforge',
    'delete table inet edgeforge',
    'table inet edgeforge {',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    '\t\tiif "lo" accept',
  ];
  for (const r of rules) L.push(`\t\t# ${r.why}`, ...nftStatement(r).map((x) => `\t\t${x}`));
  L.push('\t}', '}', '');
  return L.join('\n');
}
