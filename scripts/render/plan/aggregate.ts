// The plan's tables at fleet scale: sites with the same settings form one class, firewall rules with the same
// purpose one row, hosts contacted for the same reason one row — each row saying how many sites and devices
// it stands for. The per-site rows stay in planData (--format json) and the appendix.
import type { PlanData, SitePlan } from './model.ts';
import { groupBy } from './md.ts';

export interface SiteClass {
  sites: SitePlan[];
  devices: number;
  k3s: string;
  network: string;
  encryption: string;
  mirror: string;
  ssh: string;
  inbound: string;
}

const sshKind = (s: SitePlan) =>
  s.sshFrom.startsWith('anywhere') ? 'anywhere (ssh.allowFrom: any)' : s.sshFrom.startsWith('nowhere') ? 'closed (no managementSubnet)' : "the site's management subnet";
const inboundKind = (s: SitePlan) =>
  !s.inbound ? 'none' : s.inbound.includes('from anywhere') ? `${s.inboundPorts.join(', ')} from anywhere` : `${s.inboundPorts.join(', ')} between the site's nodes`;
const clusterKind = (s: SitePlan) => (s.multiNode ? 'one multi-node cluster (server + agents)' : 'single-node clusters (SQLite)');
const encryptionKind = (s: SitePlan) =>
  s.encryptionMode === 'none' ? 'none' : `${s.encryptionMode}${s.tangRequired ? ' (tang must answer)' : ''}, secrets on the seed ${s.secretsOnSeed === 'sealed' ? 'sealed' : 'in clear'}`;

/** Sites grouped by what an architect compares: cluster shape, network, encryption, mirror, SSH, inbound ports. */
export function siteClasses(p: PlanData): SiteClass[] {
  const rows = groupBy(p.sites, (s) => [clusterKind(s), s.network, encryptionKind(s), s.registryMirror ? 'y' : 'n', sshKind(s), inboundKind(s)].join('\0'));
  return rows
    .map(([, ss]) => ({
      sites: ss,
      devices: ss.reduce((a, s) => a + s.devices, 0),
      k3s: clusterKind(ss[0]),
      network: ss[0].network,
      encryption: encryptionKind(ss[0]),
      mirror: ss[0].registryMirror ? 'yes' : '-',
      ssh: sshKind(ss[0]),
      inbound: inboundKind(ss[0]),
    }))
    .sort((a, b) => b.devices - a.devices);
}

export interface RegionRow {
  region: string;
  sites: number;
  devices: number;
  canary: string[];
  multiNode: number;
  encrypted: number;
  mirrored: number;
}

export function regionRows(p: PlanData): RegionRow[] {
  return groupBy(p.sites, (s) => s.region).map(([region, ss]) => ({
    region,
    sites: ss.length,
    devices: ss.reduce((a, s) => a + s.devices, 0),
    canary: ss.filter((s) => s.canary).map((s) => s.id),
    multiNode: ss.filter((s) => s.multiNode).length,
    encrypted: ss.filter((s) => s.encryptionMode !== 'none').length,
    mirrored: ss.filter((s) => s.registryMirror).length,
  }));
}

export interface InboundRow {
  proto: string;
  ports: string;
  from: string;
  why: string;
  sites: number;
  devices: number;
}

/** One row per (protocol, ports, purpose): the sources named when they are few, counted otherwise. */
export function inboundRows(p: PlanData): InboundRow[] {
  return groupBy(p.ports, (r) => `${r.proto}\0${r.ports}\0${r.why}`).map(([, rs]) => {
    const froms = [...new Set(rs.map((r) => r.from))];
    return {
      proto: rs[0].proto,
      ports: rs[0].ports,
      from: froms.length <= 2 ? froms.join('; ') : `${froms.length} different source lists, per site or device (e.g. ${short(froms[0])})`,
      why: rs[0].why,
      sites: new Set(rs.map((r) => r.site)).size,
      devices: rs.reduce((a, r) => a + r.devices.length, 0),
    };
  });
}

export interface OutboundRow {
  hosts: string[];
  port: string;
  when: string;
  why: string;
  sites: number;
  devices: number;
}

/** "10.0.5.11, 10.0.5.12, …" — the start of a long source list */
const short = (x: string) => {
  const parts = x.split(', ');
  return parts.length > 2 ? `${parts.slice(0, 2).join(', ')}, …` : x;
};

/** A why that names one server reads the same for every site once the name is left out. */
const whyKind = (why: string) => why.replace(/K3s server \S+ \(/, 'K3s server (');

/** One row per (port, when, why): the hosts named when they are few, counted otherwise. */
export function outboundRows(p: PlanData): OutboundRow[] {
  const flat = p.sites.flatMap((s) => s.egress.map((e) => ({ site: s, e })));
  return groupBy(flat, (x) => `${x.e.port}\0${x.e.when}\0${whyKind(x.e.why)}`).map(([, xs]) => {
    // devices, each counted once however many hosts of the row it contacts
    let devices = 0;
    for (const [, ys] of groupBy(xs, (x) => x.site.id)) devices += ys.some((y) => !y.e.devices) ? ys[0].site.devices : new Set(ys.flatMap((y) => y.e.devices!)).size;
    return { hosts: [...new Set(xs.map((x) => x.e.host))], port: xs[0].e.port, when: xs[0].e.when, why: whyKind(xs[0].e.why), sites: new Set(xs.map((x) => x.site.id)).size, devices };
  });
}

export const hostsText = (hosts: string[]) => (hosts.length <= 4 ? hosts.join(', ') : `${hosts.length} hosts, one per site or server (e.g. ${hosts.slice(0, 2).join(', ')})`);
