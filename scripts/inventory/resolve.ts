// Cascade fleet defaults → region → site → device, then check what only the whole fleet can tell:
// unique ids/serials/MACs/addresses, profiles that exist, networks that make sense, clusters with one server.
import type { Cascade, DeviceInput, Inventory } from './schema.ts';
import type { Fleet, ResolvedDevice, ResolvedNetwork, ResolvedSite } from './fleet.ts';
import { closest, type Locator, type PathKey } from './problems.ts';
import { type Problem } from '../util/errors.ts';
import { day2Problems } from './day2-checks.ts';
import { siteWindow } from './windows.ts';
import { presetCanarySites, sitePolicy } from './industry.ts';
import { resolveImageArchives } from './image-archives.ts';
import { osProblems } from './os-checks.ts';
import { resolveFleetStatus } from './fleet-status.ts';

const OBJECT_KEYS = new Set(['network', 'ssh', 'encryption', 'registryMirror', 'labels']);

/** Nearest wins; objects merge key by key so a device can add `address` to its site's static network. */
export function cascade(...layers: (Partial<Cascade> | undefined)[]): Cascade {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined || !(k in CASCADE_KEYS)) continue;
      if (OBJECT_KEYS.has(k) && out[k] && typeof v === 'object' && !Array.isArray(v)) out[k] = { ...(out[k] as object), ...v };
      else out[k] = v;
    }
  }
  return out as Cascade;
}
const CASCADE_KEYS: Record<string, true> = {
  profile: true,
  network: true,
  ssh: true,
  encryption: true,
  registryMirror: true,
  managementSubnet: true,
  timezone: true,
  ntp: true,
  users: true,
  labels: true,
};

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
}
export function parseCidr(c: string): { ip: string; prefix: number; network: number; mask: number } {
  const [ip, p] = c.split('/');
  const prefix = Number(p);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { ip, prefix, network: (ipToInt(ip) & mask) >>> 0, mask };
}
export function inSubnet(ip: string, subnet: string): boolean {
  const s = parseCidr(subnet);
  return (ipToInt(ip) & s.mask) >>> 0 === s.network;
}
export function normalizeMac(mac: string): string {
  return mac.toLowerCase().replace(/-/g, ':');
}

type Region = Inventory['regions'][string];
type Site = Region['sites'][string];
type Pin = keyof Checks['firstSeen'];

/** Every problem the resolution finds, in inventory order, and the first place each unique value was seen. */
interface Checks {
  add(path: PathKey[], msg: string): void;
  unique(kind: Pin, value: string, path: PathKey[], label: string): void;
  firstSeen: Record<'id' | 'serial' | 'mac' | 'ip', Map<string, PathKey[]>>;
  problems: Problem[];
  loc: Locator;
}

function checks(loc: Locator): Checks {
  const problems: Problem[] = [];
  const firstSeen = { id: new Map<string, PathKey[]>(), serial: new Map<string, PathKey[]>(), mac: new Map<string, PathKey[]>(), ip: new Map<string, PathKey[]>() };
  const add = (path: PathKey[], msg: string) => problems.push(loc.problem(path, msg, false));
  const unique = (kind: Pin, value: string, path: PathKey[], label: string) => {
    const prev = firstSeen[kind].get(value);
    if (prev) add(path, `${label} ${JSON.stringify(value)} is already used at line ${loc.pos(prev).line}; ${label}s must be unique across the fleet`);
    else firstSeen[kind].set(value, path);
  };
  return { add, unique, firstSeen, problems, loc };
}

export function resolveFleet(inv: Inventory, loc: Locator, meta: { file: string; sha256: string }): { fleet?: Fleet; problems: Problem[] } {
  const c = checks(loc);
  const presetCanary = presetCanarySites(inv);
  const regions: Fleet['regions'] = [];
  const sites: ResolvedSite[] = [];
  for (const [regionName, region] of Object.entries(inv.regions)) {
    const rsites = Object.entries(region.sites).map(([siteName, site]) => resolveSite(inv, c, presetCanary, regionName, region, siteName, site));
    sites.push(...rsites);
    regions.push({ name: regionName, description: region.description, sites: rsites });
  }
  const devices = sites.flatMap((s) => s.devices);
  const active = devices.filter((d) => d.status === 'active');
  fleetWideChecks(inv, c, devices, active);
  const images = resolveImageArchives(inv, loc);
  c.problems.push(...images.problems);
  if (c.problems.length) return { problems: c.problems };
  const profileNames = Object.keys(inv.profiles);
  return {
    problems: c.problems,
    fleet: {
      file: meta.file,
      inventorySha256: meta.sha256,
      name: inv.fleet.name,
      industry: inv.fleet.industry,
      description: inv.fleet.description,
      profiles: inv.profiles,
      k3s: inv.k3s,
      gitops: inv.gitops,
      ...(inv.os ? { os: inv.os } : {}),
      ...(inv.status ? { status: resolveFleetStatus(inv.status, inv.fleet) } : {}),
      admins: inv.admins,
      regions,
      sites,
      devices,
      active,
      imageArchives: images.pins,
      imageArchiveLists: images.lists,
      profileRamAt: Object.fromEntries(profileNames.map((n) => [n, loc.pos(['profiles', n, inv.profiles[n].usableRamMiB !== undefined ? 'usableRamMiB' : 'ramMiB'])])),
      inventory: inv,
    },
  };
}

function resolveSite(inv: Inventory, c: Checks, presetCanary: ReturnType<typeof presetCanarySites>, regionName: string, region: Region, siteName: string, site: Site): ResolvedSite {
  const sitePath: PathKey[] = ['regions', regionName, 'sites', siteName];
  const canary = site.canary ?? presetCanary.sites.has(`${regionName}/${siteName}`);
  const policy = sitePolicy(inv, regionName, siteName);
  const devices = site.devices.map((d: DeviceInput, i: number) => resolveDevice(inv, c, [...sitePath, 'devices', i], cascade(inv.defaults, region, site, d), d, { regionName, siteName, canary }));
  const active = devices.filter((x) => x.status === 'active');
  // the industry preset (or the inventory's policy) may require disk encryption: say it once per site
  const plain = active.find((x) => x.encryption.mode === 'none');
  if (plain && policy.encryption === 'required') {
    c.add(
      site.encryption ? [...sitePath, 'encryption'] : plain.source.path,
      `site "${siteName}" runs ${plain.id} without disk encryption, but encryption is required here (${policy.encryptionSource}): set encryption (tang, tpm2 or tang+tpm2) on the site, or policy: {encryption: recommended} to accept the risk`,
    );
  }
  formCluster(c, sitePath, siteName, active);
  const timezone = cascade(inv.defaults, region, site).timezone ?? 'Etc/UTC';
  const window = siteWindow(inv, regionName, siteName, timezone);
  return {
    region: regionName,
    name: siteName,
    id: `${regionName}/${siteName}`,
    description: site.description,
    location: site.location,
    canary,
    canarySource: site.canary !== undefined ? 'site' : presetCanary.source,
    window,
    policy,
    devices,
  };
}

/** A site with agents is one multi-node cluster with exactly one server, which the agents reach at its static address. */
function formCluster(c: Checks, sitePath: PathKey[], siteName: string, active: ResolvedDevice[]): void {
  const agents = active.filter((x) => x.role === 'agent');
  if (!agents.length) return;
  const servers = active.filter((x) => x.role === 'server');
  if (servers.length !== 1) {
    c.add([...sitePath, 'devices'], `site "${siteName}" has ${agents.length} agent(s) and ${servers.length} active servers; a multi-node site needs exactly one server for its agents to join`);
    return;
  }
  const server = servers[0];
  if (server.network.mode !== 'static') {
    c.add(server.source.path, `"${server.id}" is the K3s server that ${agents.length} agent(s) join, so it needs a static address (network mode: static)`);
  }
  server.cluster = { kind: 'multi-node-server', agents: agents.map((a) => a.id) };
  const serverUrl = `https://${server.network.mode === 'static' ? server.network.ip : server.id}:6443`;
  for (const a of agents) a.cluster = { kind: 'multi-node-agent', serverId: server.id, serverUrl };
}

function resolveDevice(inv: Inventory, c: Checks, path: PathKey[], eff: Cascade, d: DeviceInput, at: { regionName: string; siteName: string; canary: boolean }): ResolvedDevice {
  const mac = checkIdentity(c, path, d);
  const { profileName, profile } = resolveProfile(inv, c, path, eff, d);
  const network = resolveNetwork(c, path, eff, d);
  const encryption = resolveEncryption(c, path, eff, d, profileName, profile);
  if (d.status === 'replaced' && !d.replacedBy) c.add([...path, 'status'], `device "${d.id}" has status "replaced" but no "replacedBy" naming the device that took its slot`);
  if (d.replacedBy && d.status !== 'replaced') c.add([...path, 'replacedBy'], `"replacedBy" is only meaningful with status: replaced`);
  const rd: ResolvedDevice = {
    id: d.id,
    serial: d.serial,
    mac,
    region: at.regionName,
    site: at.siteName,
    siteId: `${at.regionName}/${at.siteName}`,
    profileName,
    profile,
    role: d.role,
    cluster: { kind: 'single-node' },
    status: d.status,
    replacedBy: d.replacedBy,
    revoked: d.revoked,
    network,
    ssh: { ...(eff.ssh ?? {}) },
    encryption,
    registryMirror: eff.registryMirror,
    managementSubnet: eff.managementSubnet,
    timezone: eff.timezone ?? 'Etc/UTC',
    ntp: eff.ntp ?? [],
    users: eff.users ?? [],
    labels: eff.labels ?? {},
    canary: at.canary,
    notes: d.notes,
    source: { ...c.loc.pos(path), path },
  };
  if (rd.ssh.host === undefined && network.mode === 'static' && network.ip) rd.ssh.host = network.ip;
  return rd;
}

/** Id, serial and NIC unique across the fleet; the MAC a real unicast address. Returns the MAC normalized. */
function checkIdentity(c: Checks, path: PathKey[], d: DeviceInput): string {
  c.unique('id', d.id, [...path, 'id'], 'device id');
  c.unique('serial', d.serial, [...path, 'serial'], 'serial');
  // a replacement may take over its revoked predecessor's NIC and address: those are unique among active devices
  if (d.status === 'active') c.unique('mac', normalizeMac(d.mac), [...path, 'mac'], 'MAC');
  const m = normalizeMac(d.mac);
  if (parseInt(m.slice(0, 2), 16) & 1) c.add([...path, 'mac'], `MAC ${d.mac} is a multicast address; a NIC's MAC has the lowest bit of the first byte clear`);
  if (m === '00:00:00:00:00:00' || m === 'ff:ff:ff:ff:ff:ff') c.add([...path, 'mac'], `MAC ${d.mac} is not a real NIC address`);
  return m;
}

function resolveProfile(inv: Inventory, c: Checks, path: PathKey[], eff: Cascade, d: DeviceInput): Pick<ResolvedDevice, 'profileName' | 'profile'> {
  const profileNames = Object.keys(inv.profiles);
  let profileName = eff.profile ?? '';
  if (!eff.profile) c.add(path, `device "${d.id}" has no profile: set "profile" on the device, its site, region or fleet defaults (one of ${profileNames.join(', ')})`);
  else if (!inv.profiles[profileName]) {
    const guess = closest(profileName, profileNames);
    c.add(d.profile ? [...path, 'profile'] : path, `profile "${profileName}" is not defined under "profiles"${guess ? `; did you mean "${guess}"?` : ` (defined: ${profileNames.join(', ')})`}`);
    profileName = '';
  }
  return { profileName, profile: inv.profiles[profileName] };
}

function resolveNetwork(c: Checks, path: PathKey[], eff: Cascade, d: DeviceInput): ResolvedNetwork {
  const n = eff.network ?? {};
  const mode = n.mode ?? (n.address ? 'static' : 'dhcp');
  if (mode !== 'static') {
    if (d.network?.address) c.add([...path, 'network', 'address'], `device "${d.id}" uses DHCP; remove "address" or set network mode: static`);
    return { mode: 'dhcp', interface: n.interface ?? 'eth0', dns: n.dns ?? [], search: n.search ?? [] };
  }
  const netPath = d.network ? [...path, 'network'] : path;
  if (!n.address) c.add(netPath, `device "${d.id}" uses a static network but has no "address" (like 10.20.1.11/24)`);
  if (!n.gateway) c.add(netPath, `device "${d.id}" uses a static network but no "gateway" is set on it, its site, region or defaults`);
  if (!n.dns?.length) c.add(netPath, `device "${d.id}" uses a static network but no "dns" servers are set`);
  const cidr = n.address ? parseCidr(n.address) : undefined;
  if (cidr && n.gateway && !inSubnet(n.gateway, n.address!)) c.add(d.network?.gateway ? [...path, 'network', 'gateway'] : [...netPath, 'address'], `gateway ${n.gateway} is not inside ${n.address}`);
  if (cidr && cidr.prefix < 31) {
    const host = (ipToInt(cidr.ip) & ~cidr.mask) >>> 0;
    if (host === 0 || host === ~cidr.mask >>> 0) c.add([...netPath, 'address'], `${n.address} is the network or broadcast address of its subnet`);
  }
  if (cidr && n.gateway && cidr.ip === n.gateway) c.add([...netPath, 'address'], `address ${cidr.ip} is the gateway's address`);
  if (cidr && d.status === 'active') c.unique('ip', cidr.ip, [...netPath, 'address'], 'static address');
  return {
    mode: 'static',
    interface: n.interface ?? 'eth0',
    address: n.address ?? '',
    ip: cidr?.ip ?? '',
    prefix: cidr?.prefix ?? 0,
    gateway: n.gateway ?? '',
    dns: n.dns ?? [],
    search: n.search ?? [],
  };
}

/** The unlock pins a mode needs (tang servers, a TPM) and a threshold no higher than the pins. */
function resolveEncryption(c: Checks, path: PathKey[], eff: Cascade, d: DeviceInput, profileName: string, profile: ResolvedDevice['profile'] | undefined): ResolvedDevice['encryption'] {
  const e = eff.encryption ?? {};
  const mode = e.mode ?? 'none';
  const tang = e.tang ?? [];
  const encPath = d.encryption ? [...path, 'encryption'] : path;
  if ((mode === 'tang' || mode === 'tang+tpm2') && tang.length === 0)
    c.add(encPath, `encryption mode "${mode}" for "${d.id}" needs at least one tang server (url + thumbprint) on the device, site, region or defaults`);
  if ((mode === 'tpm2' || mode === 'tang+tpm2') && profile && !profile.tpm2) c.add(encPath, `encryption mode "${mode}" for "${d.id}" needs a TPM, but profile "${profileName}" has tpm2: false`);
  const pins = (mode.includes('tang') ? tang.length : 0) + (mode.includes('tpm2') ? 1 : 0);
  if (e.threshold !== undefined && e.threshold > pins) c.add(encPath, `encryption threshold ${e.threshold} is more than the ${pins} pin(s) configured for "${d.id}"`);
  return { mode, tang, threshold: e.threshold ?? 1 };
}

/** What only the whole fleet can tell: replacements that exist, day-2 and OS settings, the stated device count. */
function fleetWideChecks(inv: Inventory, c: Checks, devices: ResolvedDevice[], active: ResolvedDevice[]): void {
  for (const d of devices) {
    if (d.replacedBy && !c.firstSeen.id.has(d.replacedBy)) {
      const guess = closest(d.replacedBy, c.firstSeen.id.keys());
      c.add([...d.source.path, 'replacedBy'], `replacedBy "${d.replacedBy}" is not a device in this inventory${guess ? `; did you mean "${guess}"?` : ''}`);
    }
  }
  const activeBySite = new Map<string, number>();
  for (const d of active) activeBySite.set(d.siteId, (activeBySite.get(d.siteId) ?? 0) + 1);
  for (const [p, msg] of day2Problems(inv, activeBySite)) c.add(p, msg);
  for (const [p, msg] of osProblems(inv, active)) c.add(p, msg);
  if (inv.fleet.deviceCount !== undefined && inv.fleet.deviceCount !== active.length) {
    const revoked = devices.length - active.length;
    c.add(
      ['fleet', 'deviceCount'],
      `fleet.deviceCount is ${inv.fleet.deviceCount} but the inventory lists ${active.length} active device(s)${revoked ? ` (and ${revoked} revoked/replaced)` : ''}; fix the count or remove it to have it derived`,
    );
  }
}
