// What a device accepts inbound: ONE list of rules, rendered into its nftables table (system.ts) and into the
// plan's per-site port table, so the report can only say what the firewall does. Pure.
//
// SSH: from the site's management subnet when it has one; from anywhere only when the inventory opts in with
// `ssh: {allowFrom: any}`; otherwise closed (provision then refuses the device and says why).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';

export interface InboundRule {
  proto: 'tcp' | 'udp' | 'icmp' | 'any';
  /** empty: every port (or none, for icmp) */
  ports: number[];
  /** source addresses/CIDRs, or 'any' */
  from: string[] | 'any';
  /** input interfaces, when the rule is about where traffic arrives rather than who sends it */
  iif?: string[];
  /** source port (DHCP replies come from port 67) */
  sport?: number;
  why: string;
}

export const DEFAULT_CLUSTER_CIDR = '10.42.0.0/16';
/** K3s between the nodes of one cluster: API server + kubelet (tcp), flannel wireguard-native v4/v6 (udp) */
export const K3S_TCP_PORTS = [6443, 10250];
export const K3S_UDP_PORTS = [51820, 51821];

/** Where SSH is accepted from, or undefined when it is closed. */
export function sshSources(d: Pick<ResolvedDevice, 'managementSubnet' | 'ssh'>): string[] | 'any' | undefined {
  if (d.managementSubnet) return [d.managementSubnet];
  if ((d.ssh as { allowFrom?: string }).allowFrom === 'any') return 'any';
  return undefined;
}

/** Why provision cannot reach a device, or undefined when its firewall accepts SSH. */
export function sshClosedReason(d: ResolvedDevice): string | undefined {
  if (sshSources(d)) return undefined;
  return `SSH is closed on ${d.id}: site ${d.siteId} has no managementSubnet and the inventory does not open SSH to everyone (ssh: {allowFrom: any}); set one of them, or deliver it by its seed card`;
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

/** Everything the input chain accepts besides established/related and loopback traffic, in order. */
export function inboundRules(d: ResolvedDevice, fleet: Pick<Fleet, 'active' | 'k3s'>): InboundRule[] {
  const rules: InboundRule[] = [
    { proto: 'icmp', ports: [], from: 'any', why: 'ICMP and ICMPv6 (path MTU, neighbour discovery)' },
    { proto: 'udp', ports: [68], sport: 67, from: 'any', why: 'DHCP replies (the lease is renewed by unicast)' },
    { proto: 'any', ports: [], from: 'any', iif: ['cni0', 'flannel-wg', 'flannel-wg-v6'], why: 'pods reach the node through the CNI bridge and the WireGuard overlay (DNS, API server, kubelet)' },
    { proto: 'any', ports: [], from: [fleet.k3s.clusterCidr ?? DEFAULT_CLUSTER_CIDR], why: 'the pod network' },
  ];
  const ssh = sshSources(d);
  const sshPort = d.ssh.port ?? 22;
  if (ssh === 'any') rules.push({ proto: 'tcp', ports: [sshPort], from: 'any', why: 'SSH (keys only) from anywhere: ssh.allowFrom: any' });
  else if (ssh) rules.push({ proto: 'tcp', ports: [sshPort], from: ssh, why: "SSH (keys only) from the site's management subnet" });
  if (d.cluster.kind !== 'single-node') {
    const ips = clusterPeers(d, fleet).map((p) => (p.network.mode === 'static' ? p.network.ip : undefined));
    // a peer with a DHCP address cannot be named in advance: then from anywhere
    const from = ips.length && ips.every(Boolean) ? (ips as string[]) : 'any';
    rules.push({ proto: 'tcp', ports: K3S_TCP_PORTS, from, why: 'the K3s cluster of this site: API server, kubelet' });
    rules.push({ proto: 'udp', ports: K3S_UDP_PORTS, from, why: 'the K3s cluster of this site: WireGuard (flannel wireguard-native)' });
  }
  return rules;
}

const set = (xs: (string | number)[]) => (xs.length === 1 ? String(xs[0]) : `{ ${xs.join(', ')} }`);

/** One rule as an nftables statement. */
export function nftStatement(r: InboundRule): string[] {
  if (r.proto === 'icmp') return ['meta l4proto icmp accept', 'meta l4proto ipv6-icmp accept'];
  const parts: string[] = [];
  if (r.iif) parts.push(`iifname { ${r.iif.map((i) => `"${i}"`).join(', ')} }`);
  if (r.from !== 'any') parts.push(`ip saddr ${set(r.from)}`);
  if (r.proto !== 'any') {
    if (r.sport !== undefined) parts.push(`${r.proto} sport ${r.sport}`);
    parts.push(r.ports.length ? `${r.proto} dport ${set(r.ports)}` : `meta l4proto ${r.proto}`);
  }
  return [`${parts.join(' ')} accept`];
}

/** One line for the plan: "tcp 22 from 10.20.0.0/24" etc. */
export function describeRule(r: InboundRule): { proto: string; ports: string; from: string } {
  return {
    proto: r.proto === 'any' ? 'all' : r.proto,
    ports: r.ports.length ? r.ports.join(', ') : r.proto === 'icmp' ? '-' : 'all',
    from: [r.iif ? `interfaces ${r.iif.join(', ')}` : '', r.from === 'any' ? (r.iif ? '' : 'anywhere') : r.from.join(', '), r.sport !== undefined ? `source port ${r.sport}` : '']
      .filter(Boolean)
      .join(', '),
  };
}
