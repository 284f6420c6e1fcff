// The small system files the first-boot program installs: sysctls, the firewall, sshd policy, modules.
// Pure: derived from the device and its cluster peers in the fleet.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { PROTECT_KERNEL_SYSCTLS } from '../k3s/tuning.ts';

export function sysctlConf(): string {
  return [
    '# written by edgeforge: K3s runs with protect-kernel-defaults: true, and the kubelet exits unless these hold',
    ...PROTECT_KERNEL_SYSCTLS.map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
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
  return [
    '# written by edgeforge: restores table inet edgeforge at boot (touches no other table)',
    '[Unit]',
    'Description=edgeforge firewall (nftables table inet edgeforge)',
    'DefaultDependencies=no',
    'Before=network-pre.target',
    'Wants=network-pre.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    'ExecStart=/usr/sbin/nft -f /etc/edgeforge/nftables.nft',
    '',
    '[Install]',
    'WantedBy=sysinit.target',
    '',
  ].join('\n');
}

// Cluster peers by site, computed once per fleet (rendering 2,000 devices must not be quadratic).
const peerCache = new WeakMap<object, Map<string, ResolvedDevice[]>>();
function clusterPeers(d: ResolvedDevice, fleet: Pick<Fleet, 'active'>): ResolvedDevice[] {
  let bySite = peerCache.get(fleet);
  if (!bySite) {
    bySite = new Map();
    for (const x of fleet.active) if (x.cluster.kind !== 'single-node') bySite.set(x.siteId, [...(bySite.get(x.siteId) ?? []), x]);
    peerCache.set(fleet, bySite);
  }
  return (bySite.get(d.siteId) ?? []).filter((x) => x.id !== d.id);
}

const DEFAULT_CLUSTER_CIDR = '10.42.0.0/16';

/**
 * Table inet edgeforge: input policy drop; established, loopback and ICMP allowed; SSH only from the
 * management subnet when one is set; nothing else inbound except what a multi-node K3s cluster needs
 * between its own nodes. The file replaces only this table (never `flush ruleset`).
 */
export function nftablesRules(d: ResolvedDevice, fleet: Pick<Fleet, 'active' | 'k3s'>): string {
  const sshPort = d.ssh.port ?? 22;
  const L: string[] = [
    '#!/usr/sbin/nft -f',
    `# edgeforge firewall for ${d.id}: replaces table inet edgeforge only; other tables (K3s's own rules) stay`,
    '# No inbound port is required: the device pulls its state (Flux) and only talks out.',
    'table inet edgeforge',
    'delete table inet edgeforge',
    'table inet edgeforge {',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    '\t\tiif "lo" accept',
    '\t\tmeta l4proto icmp accept',
    '\t\tmeta l4proto ipv6-icmp accept',
    '\t\t# DHCP replies (the lease is renewed by unicast)',
    '\t\tudp sport 67 udp dport 68 accept',
    '\t\t# pods reach the node through the CNI bridge and the WireGuard overlay (DNS, API server, kubelet)',
    '\t\tiifname { "cni0", "flannel-wg", "flannel-wg-v6" } accept',
    `\t\tip saddr ${fleet.k3s.clusterCidr ?? DEFAULT_CLUSTER_CIDR} accept`,
  ];
  if (d.managementSubnet) {
    L.push(`\t\t# SSH only from the site's management subnet`, `\t\tip saddr ${d.managementSubnet} tcp dport ${sshPort} accept`);
  } else {
    L.push('\t\t# no management subnet configured for this site: SSH (keys only) from anywhere', `\t\ttcp dport ${sshPort} accept`);
  }
  if (d.cluster.kind !== 'single-node') {
    const peers = clusterPeers(d, fleet);
    const ips = peers.map((p) => (p.network.mode === 'static' ? p.network.ip : undefined));
    L.push('\t\t# the K3s cluster of this site: API server, kubelet, WireGuard (flannel wireguard-native)');
    if (peers.length && ips.every(Boolean)) {
      const set = `{ ${ips.join(', ')} }`;
      L.push(`\t\tip saddr ${set} tcp dport { 6443, 10250 } accept`, `\t\tip saddr ${set} udp dport { 51820, 51821 } accept`);
    } else {
      // a peer with a DHCP address cannot be named in advance
      L.push('\t\ttcp dport { 6443, 10250 } accept', '\t\tudp dport { 51820, 51821 } accept');
    }
  }
  L.push('\t}', '}', '');
  return L.join('\n');
}
