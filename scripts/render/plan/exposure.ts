// What a device accepts from the network, read back from its rendered nftables rules (not from the
// inventory): the plan's sentences about SSH and inbound ports are only as true as the firewall the device runs.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { nftablesRules } from '../firstboot/system.ts';

export interface InboundRule {
  proto: 'tcp' | 'udp';
  ports: number[];
  /** source addresses/subnets, or undefined = from anywhere */
  from?: string[];
}

// `[ip saddr X|{ X, Y }] tcp|udp dport N|{ N, M } accept` inside chain input; rules with a source port
// (DHCP replies to the client's own request) and interface/pod-CIDR rules are not listening ports.
const RULE = /^(?:ip saddr (\{[^}]*\}|\S+) )?(tcp|udp) dport (\{[^}]*\}|\d+) accept$/;
const list = (s: string) =>
  s
    .replace(/[{}]/g, '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** Every (protocol, ports, source) the input chain of a rendered nftables file accepts. */
export function parseInboundRules(nft: string): InboundRule[] {
  const out: InboundRule[] = [];
  let inInput = false;
  for (const raw of nft.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('chain ')) inInput = line.startsWith('chain input');
    if (!inInput) continue;
    const m = RULE.exec(line);
    if (!m) continue;
    out.push({ proto: m[2] as 'tcp' | 'udp', ports: list(m[3]).map(Number), from: m[1] ? list(m[1]) : undefined });
  }
  return out;
}

export interface DeviceExposure {
  /** where SSH is accepted from: subnets, 'anywhere', or 'closed' */
  ssh: string[] | 'anywhere' | 'closed';
  /** inbound rules other than SSH */
  other: InboundRule[];
}

export function deviceExposure(d: ResolvedDevice, fleet: Pick<Fleet, 'active' | 'k3s'>): DeviceExposure {
  const sshPort = d.ssh.port ?? 22;
  const rules = parseInboundRules(nftablesRules(d, fleet));
  const ssh = rules.filter((r) => r.proto === 'tcp' && r.ports.includes(sshPort));
  const other = rules.map((r) => (r.proto === 'tcp' ? { ...r, ports: r.ports.filter((p) => p !== sshPort) } : r)).filter((r) => r.ports.length);
  return {
    ssh: !ssh.length ? 'closed' : ssh.some((r) => !r.from) ? 'anywhere' : [...new Set(ssh.flatMap((r) => r.from!))],
    other,
  };
}

const PORT_NAMES: Record<string, string> = { '6443/tcp': 'K3s API', '10250/tcp': 'kubelet', '51820/udp': 'WireGuard', '51821/udp': 'WireGuard over IPv6' };

/** "6443/tcp (K3s API)" — the port, its protocol and what listens there when edgeforge knows */
export function portName(port: number, proto: string): string {
  const k = `${port}/${proto}`;
  return PORT_NAMES[k] ? `${k} (${PORT_NAMES[k]})` : k;
}
