// The fleet architecture report: what a senior edge architect hands the customer, generated from
// the inventory and the rendered files (firewall rules, K3s config, Flux sizing): every factual sentence is
// computed, and test/plan/derived.test.ts checks it against the rendered bytes. One data model (`planData`)
// feeds both Markdown and JSON.
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';
import { statusPlanLines } from './status.ts';
import { tuningFor, PROTECT_KERNEL_SYSCTLS, type Tuning } from '../k3s/tuning.ts';
import { fluxControllers, fluxStorageMode } from '../flux/components.ts';
import { devicePollInterval } from '../flux/jitter.ts';
import { runsFlux } from '../flux/sync.ts';
import { deviceExposure, portName } from './exposure.ts';
import { siteEgress, type EgressInputs, type EgressRow } from './egress.ts';
import { memoryBudget, type MemoryBudget } from './memory.ts';
import { describeRule, inboundRules, sshSources } from '../firstboot/firewall.ts';
import { renderK3sConfig } from '../k3s/config.ts';
import { k3sInstallScript } from '../k3s/install.ts';
import { deliveredImageArchives } from '../k3s/images.ts';
import { NFTABLES_FILE } from '../../device/layout.ts';
import { day2Markdown, day2Plan, industryText } from './day2.ts';
import type { Expiry } from '../../conformance/expiry.ts';

/** What the plan reads besides the inventory (the shell reads it, the plan stays pure). */
export interface PlanInputs extends EgressInputs {
  /** what the inventory's inputs hold that expires (the broker CA): shown with its date under Day 2 */
  expiries?: Expiry[];
}

/** One unchanged poll of a Git repository over SSH: handshake + ref advertisement. An estimate (~7 KB, not measured here: the SSH handshake dominates); the plan says so. */
export const BYTES_PER_IDLE_POLL = 7 * 1024;

export interface SitePlan {
  id: string;
  region: string;
  site: string;
  location?: string;
  devices: number;
  cluster: string;
  multiNode: boolean;
  network: string;
  encryption: string;
  encryptionMode: string;
  /** how the data volume behaves when the device boots offline (derived from the mode, tang servers, threshold) */
  unlock: string;
  /** the data volume cannot unlock without tang (mode, tang servers and threshold) */
  tangRequired: boolean;
  /** one-time secrets on the seed: sealed to tang, or in clear until first boot */
  secretsOnSeed: 'sealed' | 'clear';
  registryMirror?: string;
  /** where SSH is accepted from, read from the rendered nftables rules of the site's devices */
  ssh: string;
  /** the same, as the firewall's rule list words it (firewall.ts) */
  sshFrom: string;
  /** other inbound ports the rendered rules accept, or '' */
  inbound: string;
  /** those ports, named ("6443/tcp (K3s API)") */
  inboundPorts: string[];
  canary: boolean;
  fluxDevices: number;
  /** every host the site's devices connect to, at first boot and after: the firewall request (egress.ts) */
  egress: EgressRow[];
}

export interface PlanData {
  fleet: { name: string; industry: string; description?: string; activeDevices: number; revokedDevices: number; regions: number; sites: number; clusters: { singleNode: number; multiNode: number; agents: number }; fluxDevices: number };
  specs: { profile: string; board: string; ramMiB: number; storage: string; layout: string; encryptionCipher: string; devices: number; roles: Record<string, number> }[];
  sites: SitePlan[];
  exposure: { noInbound: boolean; text: string };
  k3s: { version: string; installMode: string; disable: string[]; imageArchives: { component: string; image: string; file: string }[]; profiles: { profile: string; role: string; tuning: Tuning; budget: MemoryBudget; exampleDevice: string; config: string; install: string }[] };
  gitops: { url: string; branch: string; interval: string; controllers: string[]; fluxDevices: number; pollsPerDay: number; mirroredPollsPerDay: number; idleTrafficPerDayBytes: number; layout: string[] };
  /** per site, devices with the same inbound rules grouped: exactly what their nftables.nft accepts (firewall.ts) */
  ports: { site: string; devices: string[]; proto: string; ports: string; from: string; why: string }[];
  offline: string[];
  conflicts: string[];
  theft: string[];
  secrets: string;
}

function sshFromText(s: ResolvedSite): string {
  const active = s.devices.filter((d) => d.status === 'active');
  const texts = [...new Set(active.map((d) => {
    const src = sshSources(d);
    return src === 'any' ? 'anywhere (ssh.allowFrom: any)' : src ? src.join(', ') : 'nowhere: SSH closed (no managementSubnet)';
  }))];
  return texts.join('; ') || '-';
}

/** The per-site port table: devices of a site whose inbound rules are identical share rows. */
export function portTable(fleet: Fleet): PlanData['ports'] {
  const rows: PlanData['ports'] = [];
  for (const s of fleet.sites) {
    const groups = new Map<string, { devices: string[]; rules: ReturnType<typeof describeRule>[]; whys: string[] }>();
    for (const d of s.devices.filter((x) => x.status === 'active')) {
      const rules = inboundRules(d, fleet);
      const described = rules.map(describeRule);
      const key = JSON.stringify(described);
      const g = groups.get(key) ?? { devices: [], rules: described, whys: rules.map((r) => r.why) };
      g.devices.push(d.id);
      groups.set(key, g);
    }
    for (const g of groups.values()) g.rules.forEach((r, i) => rows.push({ site: s.id, devices: g.devices, ...r, why: g.whys[i] }));
  }
  return rows;
}

function clusterText(s: ResolvedSite, joinWindow: string): string {
  const active = s.devices.filter((d) => d.status === 'active');
  const server = active.find((d) => d.cluster.kind === 'multi-node-server');
  if (server && server.cluster.kind === 'multi-node-server') return `one cluster: server ${server.id} + ${server.cluster.agents.length} agent(s), each joining with its own bootstrap token (valid ${joinWindow} after issue, k3s.joinWindow)`;
  return `${active.length} single-node cluster(s) (SQLite)`;
}

function encryptionText(d: ResolvedDevice | undefined): string {
  if (!d) return '-';
  const e = d.encryption;
  if (e.mode === 'none') return 'none';
  const tang = e.tang.map((t) => new URL(t.url).host).join(', ');
  if (e.mode === 'tang') return `tang (${tang})${e.tang.length > 1 ? `, ${e.threshold} of ${e.tang.length}` : ''}`;
  if (e.mode === 'tpm2') return 'TPM2';
  return `tang (${tang}) + TPM2, threshold ${e.threshold}`;
}

/** How many tang servers must answer for the data volume to unlock (0: the TPM alone suffices, or no encryption). */
function tangNeededFor(d: ResolvedDevice): number {
  const e = d.encryption;
  if (!e.mode.includes('tang')) return 0;
  return Math.max(0, e.threshold - (e.mode.includes('tpm2') ? 1 : 0));
}

/** What a reboot without network means for the data volume, from the mode, tang servers and threshold. */
function unlockText(d: ResolvedDevice | undefined): string {
  if (!d) return '';
  const e = d.encryption;
  if (e.mode === 'none') return 'no encrypted data volume: K3s, images and the Flux cache are on the root filesystem and start without waiting for anything';
  const tpm = e.mode.includes('tpm2') ? 1 : 0;
  const tangNeeded = tangNeededFor(d);
  const hosts = e.tang.map((t) => new URL(t.url).host).join(', ');
  if (tangNeeded === 0) return 'the encrypted data volume (K3s, images, Flux cache) unlocks from the TPM without the network';
  const which = tangNeeded === e.tang.length ? (e.tang.length > 1 ? `all ${e.tang.length} of its tang servers` : 'its tang server') : `${tangNeeded} of its ${e.tang.length} tang servers`;
  return `the encrypted data volume (K3s, images, Flux cache) unlocks only when ${which} (${hosts}) ${tangNeeded === 1 ? 'answers' : 'answer'}${tpm ? ' and the TPM policy holds' : ''}; offline, the unlock retries with backoff and K3s waits for it — nothing is lost, the device is just late`;
}

function siteExposure(s: ResolvedSite, fleet: Fleet): { ssh: string; inbound: string; inboundPorts: string[]; anyInbound: boolean } {
  const active = s.devices.filter((d) => d.status === 'active');
  const ex = active.map((d) => deviceExposure(d, fleet));
  const sshFrom = new Set<string>();
  for (const e of ex) {
    if (e.ssh === 'anywhere') sshFrom.add('anywhere');
    else if (e.ssh === 'closed') sshFrom.add('closed');
    else e.ssh.forEach((x) => sshFrom.add(x));
  }
  const ssh = sshFrom.has('anywhere') ? 'anywhere (ssh.allowFrom: any)' : [...sshFrom].join(', ') || '-';
  // other inbound: one description per (proto, ports), "the site's nodes" when every rule names its peers
  const other = new Map<string, boolean>();
  for (const e of ex) for (const r of e.other) other.set(`${r.ports.join(', ')}/${r.proto}`, (other.get(`${r.ports.join(', ')}/${r.proto}`) ?? false) || !r.from);
  const inbound = [...other].map(([k, open]) => `${k} from ${open ? 'anywhere' : "the site's nodes"}`).join('; ');
  const inboundPorts = [...new Set(ex.flatMap((e) => e.other.flatMap((r) => r.ports.map((p) => portName(p, r.proto)))))];
  return { ssh, inbound, inboundPorts, anyInbound: ssh !== 'closed' || other.size > 0 };
}

const list = (xs: string[], none = '(none)') => (xs.length ? xs.join(', ') : none);

export function planData(fleet: Fleet, inp: EgressInputs = {}): PlanData {
  const active = fleet.active;
  const specs = Object.entries(fleet.profiles).map(([name, p]) => {
    const ds = active.filter((d) => d.profileName === name);
    const roles: Record<string, number> = {};
    for (const d of ds) roles[d.cluster.kind] = (roles[d.cluster.kind] ?? 0) + 1;
    return { profile: name, board: p.board, ramMiB: p.ramMiB, storage: `${p.storage.sizeGB} GB ${p.storage.medium}`, layout: p.baseImage.layout, encryptionCipher: p.cpuAes ? 'aes-xts-plain64' : 'xchacha12,aes-adiantum-plain64', devices: ds.length, roles };
  });
  const exposures: { site: SitePlan; anyInbound: boolean }[] = [];
  const sites = fleet.sites.map((s) => {
    const act = s.devices.filter((d) => d.status === 'active');
    const first = act[0] ?? s.devices[0];
    const x = siteExposure(s, fleet);
    const sealed = !!first && first.encryption.mode.includes('tang') && first.encryption.tang.some((t) => t.advertisement);
    const site: SitePlan = {
      id: s.id,
      region: s.region,
      site: s.name,
      location: s.location,
      devices: act.length,
      cluster: clusterText(s, fleet.k3s.joinWindow ?? '30d'),
      multiNode: act.some((d) => d.cluster.kind !== 'single-node'),
      network: [...new Set(s.devices.map((d) => d.network.mode))].join(' + '),
      encryption: encryptionText(first),
      encryptionMode: first?.encryption.mode ?? 'none',
      unlock: unlockText(first),
      tangRequired: !!first && tangNeededFor(first) > 0,
      secretsOnSeed: sealed ? 'sealed' : 'clear',
      registryMirror: first?.registryMirror?.url,
      ssh: x.ssh,
      sshFrom: sshFromText(s),
      inbound: x.inbound,
      inboundPorts: x.inboundPorts,
      canary: s.canary,
      fluxDevices: act.filter(runsFlux).length,
      egress: siteEgress(s, fleet, inp),
    };
    exposures.push({ site, anyInbound: x.anyInbound });
    return site;
  });
  // one representative device per (profile, cluster role) actually in use
  const reps = new Map<string, ResolvedDevice>();
  for (const d of active) {
    const role = d.cluster.kind === 'multi-node-agent' ? 'agent' : d.cluster.kind === 'multi-node-server' ? 'cluster server' : 'single-node server';
    const k = `${d.profileName}\0${role}`;
    if (!reps.has(k)) reps.set(k, d);
  }
  const profiles = [...reps.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, d]) => ({ profile: d.profileName, role: k.split('\0')[1], tuning: tuningFor(d.profile, d.role), budget: memoryBudget(d, fleet), exampleDevice: d.id, config: renderK3sConfig(d, fleet), install: k3sInstallScript(d, fleet) }));
  // polls: only devices running Flux poll, each at its own jittered interval
  const fluxDevices = active.filter(runsFlux);
  const mirrors = fleet.gitops.mirrors ?? {};
  let polls = 0;
  let mirroredPolls = 0;
  for (const d of fluxDevices) {
    const perDay = 86400 / devicePollInterval(d.id, fleet.gitops.interval).seconds;
    polls += perDay;
    if (mirrors[d.siteId]) mirroredPolls += perDay;
  }
  const pollsPerDay = Math.round(polls);
  const mirroredPollsPerDay = Math.round(mirroredPolls);
  const layout = gitopsLayout(fleet);
  const example = active[0]?.id ?? '<device-id>';
  const exampleSite = active[0]?.siteId ?? '<region>/<site>';
  const tangSites = sites.filter((s) => s.tangRequired);
  const plainSites = sites.filter((s) => s.encryptionMode === 'none');
  const clearSeedSites = sites.filter((s) => s.encryptionMode !== 'none' && s.secretsOnSeed === 'clear');
  const sealedSites = sites.filter((s) => s.secretsOnSeed === 'sealed');
  const multi = sites.filter((s) => s.multiNode);
  const agents = active.filter((d) => d.cluster.kind === 'multi-node-agent').length;
  const mirrorSites = sites.filter((s) => s.registryMirror);
  // exposure, from the rendered firewall rules
  const sshAnywhere = sites.filter((s) => s.ssh.startsWith('anywhere')).map((s) => s.id);
  const sshSubnet = sites.filter((s) => !s.ssh.startsWith('anywhere') && s.ssh !== 'closed' && s.ssh !== '-').map((s) => `${s.id} (${s.ssh})`);
  const portGroups = [false, true]
    .map((open) => {
      const ss = sites.filter((s) => s.inbound && s.inbound.includes('from anywhere') === open);
      return { open, sites: ss.map((s) => s.id), ports: [...new Set(ss.flatMap((s) => s.inboundPorts))] };
    })
    .filter((g) => g.sites.length);
  const noInbound = exposures.every((e) => !e.anyInbound);
  const exposureText = noInbound
    ? 'No device accepts an inbound connection: the firewall\'s input policy is drop and nothing is opened.'
    : [
        'The firewall\'s input policy is drop; what each device still accepts (read from its rendered nftables rules):',
        sshSubnet.length ? ` SSH from the management subnet at ${sshSubnet.join(', ')};` : '',
        sshAnywhere.length ? ` SSH from anywhere at ${sshAnywhere.length === sites.length && sites.length > 1 ? `every site (${sites.length})` : sshAnywhere.join(', ')} (\`ssh: {allowFrom: any}\`);` : '',
        ...portGroups.map((g) => ` ${g.ports.join(', ')} ${g.open ? 'from anywhere (a node without a static address cannot be named) at' : 'between the nodes of'} ${g.sites.join(', ')};`),
        ' nothing else. Git is pulled: no inbound port is needed for GitOps.',
      ].join('');
  const storage = fluxStorageMode(fleet) === 'pvc' ? 'a local-path PersistentVolume' : 'a hostPath on the K3s data directory';
  return {
    fleet: { name: fleet.name, industry: fleet.industry, description: fleet.description, activeDevices: active.length, revokedDevices: fleet.devices.length - active.length, regions: fleet.regions.length, sites: fleet.sites.length, clusters: { singleNode: active.filter((d) => d.cluster.kind === 'single-node').length, multiNode: multi.length, agents }, fluxDevices: fluxDevices.length },
    specs,
    sites,
    exposure: { noInbound, text: exposureText },
    k3s: { version: fleet.k3s.version, installMode: fleet.k3s.install.mode, disable: fleet.k3s.disable, imageArchives: deliveredImageArchives(fleet).map((a) => ({ component: a.component, image: a.image, file: a.name })), profiles },
    ports: portTable(fleet),
    gitops: { url: fleet.gitops.url, branch: fleet.gitops.branch, interval: fleet.gitops.interval, controllers: fluxControllerList(fleet), fluxDevices: fluxDevices.length, pollsPerDay, mirroredPollsPerDay, idleTrafficPerDayBytes: pollsPerDay * BYTES_PER_IDLE_POLL, layout },
    offline: [
      `Each Flux device reconciles from its own local copy: source-controller keeps the last fetched revision on ${storage}, so a reboot while offline re-applies the last known good state instead of waiting for the network.${agents ? ' Agents keep running the pods their server scheduled; while the server is unreachable nothing new is scheduled onto them.' : ''}`,
      `Polling every ${fleet.gitops.interval} plus a per-device offset: a link that drops for hours simply means missed polls; nothing queues up and nothing needs to reach the device.`,
      'When a device returns after days offline it fetches only the newest revision of its branch and converges in one reconcile: intermediate commits are never replayed.',
      ...groupBy(sites, (s) => s.unlock).map(([text, ss]) => `${ss.map((s) => s.id).join(', ')}: ${text}.`),
      ...(mirrorSites.length ? [`Images come from the site registry mirror at ${mirrorSites.map((s) => s.id).join(', ')}, so such a site pulls each image over the WAN once; ${sites.length - mirrorSites.length ? `the other ${sites.length - mirrorSites.length} site(s) pull from the public registries directly` : 'every site has one'}.`] : ['No site has a registry mirror: every device pulls its images from the public registries itself.']),
    ],
    conflicts: [
      'Git is the single source of truth. Local changes (kubectl edit on a device) are drift: the next reconcile reverts them, and `prune: true` removes objects that left Git.',
      'Staged rollouts go through overlays, not through devices: change a base, then promote the change region by region and site by site; the canary site(s) ' + (sites.filter((s) => s.canary).map((s) => s.id).join(', ') || '(none marked yet: set `canary: true` on a site)') + ' take it first.',
      'To hold a site or device still, set `suspend: true` on its Kustomization in Git; the device keeps running its current state and resumes when the flag is removed.',
      'Two operators changing the same path meet in a Git merge conflict at review time — on a workstation, never on a device.',
    ],
    theft: [
      `Mark it: \`edgeforge revoke ${example} --reason stolen\` updates the inventory (comments kept) and writes a signed revocation record.`,
      `It rotates what the device could still use: the site SOPS key for ${exampleSite} (site secrets re-encrypted to the remaining devices and admins), and removes clusters/${exampleSite}/${example} from the GitOps repository.`,
      'The record lists what must happen elsewhere, with the commands: delete the device\'s read-only deploy key on the Git host (by fingerprint), destroy the escrowed recovery key.',
      tangSites.length
        ? `At ${tangSites.map((s) => s.id).join(', ')} the data volume needs the site's tang server to unlock: carried off-site the device stays locked. Rotate that site's tang keys if the device could have reached tang after it was taken.`
        : 'No site uses tang: the data volume protection relies on TPM2 or is off (see encryption per site).',
      plainSites.length ? `Sites without encryption (${plainSites.map((s) => s.id).join(', ')}): the root filesystem holds K3s's state and the device's secrets in clear; revoke closes what they open. Add a tang server there.` : 'Every site encrypts the data volume.',
      clearSeedSites.length || plainSites.length
        ? `One-time secrets travel in clear on the seed until first boot at ${list([...plainSites, ...clearSeedSites].map((s) => s.id))}${sealedSites.length ? `; sealed to tang at ${sealedSites.map((s) => s.id).join(', ')}` : ''} (save the tang advertisement in the inventory to seal them).`
        : `One-time secrets travel sealed to each site's tang server (${sealedSites.map((s) => s.id).join(', ')}).`,
      `Then \`edgeforge replace ${example} --serial NEW-SERIAL\` gives the slot a fresh identity and builds the replacement's artifacts.`,
    ],
    secrets:
      'Every secret belongs to one device (SSH host key, Flux deploy key, K3s token, LUKS recovery passphrase, SOPS key) or to one site (the site SOPS key for secrets the whole site shares)' +
      (multi.length ? `; at the multi-node site(s) ${multi.map((s) => s.id).join(', ')} each agent joins with its own bootstrap token` : '') +
      '. edgeforge generates them; private parts are OpenPGP-encrypted to the admins in `keys/`, and devices receive only their own.',
  };
}

function groupBy<T>(xs: T[], key: (x: T) => string): [string, T[]][] {
  const m = new Map<string, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return [...m];
}

function fluxControllerList(fleet: Fleet): string[] {
  try {
    return fluxControllers(fleet);
  } catch {
    return [];
  }
}

function gitopsLayout(fleet: Fleet): string[] {
  const layout = [
    'infrastructure/base/         # shared controllers and policies',
    'apps/base/, apps/stable/, apps/canary/   # workloads and the two rollout rings',
    'overlays/',
  ];
  for (const r of fleet.regions) layout.push(`  regions/${r.name}/          # region overlay: infrastructure + region patches`);
  for (const r of fleet.regions) {
    for (const s of r.sites) layout.push(`  sites/${r.name}/${s.name}/   # its region + the ${s.canary ? 'canary ring: changes land here first' : 'stable ring'}`);
  }
  layout.push('clusters/');
  for (const r of fleet.regions) {
    for (const s of r.sites) {
      const ds = s.devices.filter(runsFlux);
      if (!ds.length) continue;
      layout.push(`  ${r.name}/${s.name}/`);
      for (const d of ds.slice(0, 3)) layout.push(`    ${d.id}/        # this device's Flux entry point (its site overlay + its own patches)`);
      if (ds.length > 3) layout.push(`    … ${ds.length - 3} more device(s)`);
    }
  }
  // align the comments
  const width = Math.max(...layout.map((l) => (l.includes('#') ? l.slice(0, l.indexOf('#')).trimEnd().length : 0))) + 2;
  return layout.map((l) => {
    const at = l.indexOf('#');
    return at > 0 ? l.slice(0, at).trimEnd().padEnd(width) + l.slice(at) : l;
  });
}

function table(head: string[], rows: (string | number | undefined)[][]): string {
  const esc = (v: string | number | undefined) => String(v ?? '').replace(/\|/g, '\\|');
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function human(bytes: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = bytes;
  while (v >= 1000 && i < u.length - 1) (v /= 1000), i++;
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${u[i]}`;
}

/** `inp`: what the shell read for the plan (the Flux bundle's controller images); without it the plan says what it could not list. */
export function renderPlanMarkdown(fleet: Fleet, inp: PlanInputs = {}): string {
  const p = planData(fleet, inp);
  const f = p.fleet;
  const o: string[] = [];
  o.push(`# ${f.name} — edge fleet architecture`, '');
  const clusters = [f.clusters.singleNode ? `${f.clusters.singleNode} single-node K3s cluster(s) on SQLite` : '', f.clusters.multiNode ? `${f.clusters.multiNode} multi-node cluster(s) with ${f.clusters.agents} agent(s) between them` : ''].filter(Boolean).join(' and ');
  o.push(
    `${f.description ? f.description + '. ' : ''}Industry: **${f.industry}** (${industryText(fleet)}). ${f.activeDevices} active ARM64 devices in ${f.sites} sites across ${f.regions} regions${f.revokedDevices ? ` (${f.revokedDevices} revoked or replaced)` : ''}: ${clusters || 'no cluster yet'}. ${f.fluxDevices} device(s) run Flux and pull their desired state from Git${f.clusters.agents ? `; the ${f.clusters.agents} agent(s) run no Flux and get their pods from their site's server` : ''}.`,
    '',
    p.exposure.text,
    '',
  );
  o.push('## 1. Fleet', '', '### Devices per spec', '');
  o.push(table(['profile', 'board', 'RAM', 'storage', 'base image', 'data-volume cipher', 'devices'], p.specs.map((s) => [s.profile, s.board, `${s.ramMiB / 1024} GB`, s.storage, s.layout, s.encryptionCipher, s.devices])), '');
  o.push('### Devices per site', '');
  o.push(table(['site', 'location', 'devices', 'K3s', 'network', 'encryption', 'registry mirror', 'SSH from', 'other inbound'], p.sites.map((s) => [`${s.id}${s.canary ? ' (canary)' : ''}`, s.location, s.devices, s.cluster, s.network, s.encryption, s.registryMirror ?? '-', s.sshFrom, s.inbound || 'none'])), '');
  o.push('### Inbound ports', '');
  o.push(
    `What each device's firewall (\`${NFTABLES_FILE}\`, input policy drop) accepts besides replies to its own connections and loopback; rendered from the same rule list as the firewall. Devices of a site with the same rules share rows.`,
    '',
  );
  o.push(table(['site', 'devices', 'protocol', 'ports', 'from', 'why'], p.ports.map((r) => [r.site, r.devices.length > 3 ? `${r.devices.slice(0, 2).join(', ')} … (${r.devices.length})` : r.devices.join(', '), r.proto, r.ports, r.from, r.why])), '');
  o.push('### Outbound: what the devices contact (the firewall request)', '');
  o.push(
    `Every connection a site's devices open, at first boot and after, derived from the inventory (K3s install ${p.k3s.installMode}${p.k3s.installMode === 'airgap' ? ': K3s, its images and the pinned image archives come from the disk image, nothing from the internet' : ''}). Nothing else needs a route out.`,
    '',
  );
  o.push(table(['site', 'host', 'port', 'when', 'why', 'devices'], p.sites.flatMap((s) => s.egress.map((e) => [s.id, e.host, e.port, e.when, e.why, e.devices ? e.devices.join(', ') : 'all']))), '');
  o.push('## 2. K3s on each spec', '');
  o.push(
    `K3s ${p.k3s.version}, installed ${p.k3s.installMode === 'online' ? 'online at a pinned version (install script checked against its sha256 before it runs)' : `from a local airgap bundle (binary, images and install script each checked against the inventory sha256${p.k3s.imageArchives.length ? `, and ${p.k3s.imageArchives.length} pinned container image archive(s) placed where K3s imports them at start: ${p.k3s.imageArchives.map((a) => `\`${a.image}\` (${a.component})`).join(', ')}` : ''})`}. Servers use SQLite (no \`cluster-init\`: embedded etcd needs more memory and quorum). Pod traffic uses flannel's \`wireguard-native\` backend; Secrets are encrypted at rest; \`protect-kernel-defaults\` is on, with its sysctls (${PROTECT_KERNEL_SYSCTLS.map(([k, v]) => `\`${k}=${v}\``).join(', ')}) shipped in the seed. Disabled: ${p.k3s.disable.map((d) => `\`${d}\``).join(', ') || 'nothing'}.`,
    '',
  );
  o.push(
    table(
      ['profile', 'role', 'RAM', 'system-reserved', 'kube-reserved', 'evict (hard/soft)', 'allocatable to pods', 'max-pods', 'logs'],
      p.k3s.profiles.map((x) => [x.profile, x.role, `${x.tuning.ramMiB} MiB`, `${x.tuning.systemReservedMiB} MiB`, `${x.tuning.kubeReservedMiB} MiB`, `${x.tuning.evictionHardMiB}/${x.tuning.evictionSoftMiB} MiB`, `${x.tuning.allocatableMiB} MiB`, x.tuning.maxPods, `${x.tuning.logMaxFiles}×${x.tuning.logMaxSize}`]),
    ),
    '',
  );
  o.push("K3s's own kubelet defaults evict only on disk pressure; `eviction-hard` with `memory.available` is what keeps the kernel OOM killer away from K3s itself on a 2 GB board.", '');
  o.push('### Memory budget', '');
  const partNames = [...new Set(p.k3s.profiles.flatMap((x) => x.budget.parts.map((b) => b.part.replace(/^K3s (server|agent)/, 'K3s'))))];
  o.push(
    table(
      ['profile', 'role', ...partNames, 'left for workloads', '= RAM'],
      p.k3s.profiles.map((x) => {
        const by = new Map(x.budget.parts.map((b) => [b.part.replace(/^K3s (server|agent)/, 'K3s'), b.mib]));
        return [x.profile, x.role, ...partNames.map((n) => (by.has(n) ? `${by.get(n)} MiB` : '-')), `${x.budget.workloadsMiB} MiB`, `${x.budget.ramMiB} MiB`];
      }),
    ),
    '',
  );
  const fp = new Map(p.k3s.profiles.flatMap((x) => x.budget.footprints.map((b) => [b.what, b])));
  o.push(
    `Each reservation is at least a published measurement: ${[...fp.values()].map((b) => `${b.what}: ${b.mib} MiB (${b.source})`).join('; ')}. System pods are counted at their memory limits (Flux: its controllers' limits; GOMEMLIMIT is 90% of each limit). "Left for workloads" is what the operator's pods can use before the kubelet evicts.`,
    '',
  );
  for (const x of p.k3s.profiles) {
    o.push(`### ${x.profile} — ${x.role} (e.g. \`${x.exampleDevice}\`)`, '', '`/etc/rancher/k3s/config.yaml`:', '', '```yaml', x.config.trimEnd(), '```', '', 'Install (run by the first-boot program):', '', '```bash', x.install, '```', '');
  }
  o.push('## 3. GitOps: pull only', '');
  const g = p.gitops;
  o.push(
    `Repository \`${g.url}\`, branch \`${g.branch}\`, host key pinned in the inventory. Each of the ${g.fluxDevices} Flux device(s) runs ${g.controllers.map((c) => `\`${c}\``).join(', ') || 'Flux'}, and reconciles \`clusters/<region>/<site>/<device>\`.`,
    '',
    '```text',
    ...g.layout,
    '```',
    '',
    `Polling every ${g.interval} plus a per-device offset: ${g.pollsPerDay.toLocaleString('en-US')} polls a day from the ${g.fluxDevices} Flux device(s)${g.mirroredPollsPerDay ? `, ${g.mirroredPollsPerDay.toLocaleString('en-US')} of them to site mirrors` : ''}; at an estimated ${BYTES_PER_IDLE_POLL / 1024} KB per idle poll (not measured) about ${human(g.idleTrafficPerDayBytes)} a day of Git-over-SSH traffic when nothing changes.${g.mirroredPollsPerDay < g.pollsPerDay ? ' A read-only mirror per site (`gitops.mirrors`), or publishing the rendered state as OCI artifacts, moves that load off the central Git host.' : ''}`,
    '',
  );
  o.push('## 4. Offline operation', '', ...p.offline.map((x) => `- ${x}`), '');
  o.push('## 5. Sync conflicts and rollouts', '', ...p.conflicts.map((x) => `- ${x}`), '');
  o.push('## 6. When a device is stolen', '', ...p.theft.map((x, i) => `${i + 1}. ${x}`), '');
  o.push('## 7. Secrets', '', p.secrets, '');
  o.push('## 8. Fleet status', '', ...statusPlanLines(fleet).map((x) => `- ${x}`), '');
  o.push('## 9. Day 2: K3s upgrades, windows, certificate renewal', '', ...day2Markdown(fleet, table, inp.expiries));
  return o.join('\n');
}

export function renderPlanJson(fleet: Fleet, inp: PlanInputs = {}): string {
  return JSON.stringify({ ...planData(fleet, inp), status: statusPlanLines(fleet), day2: day2Plan(fleet, inp.expiries) }, null, 2) + '\n';
}
