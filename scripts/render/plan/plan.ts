// The fleet architecture report: what a senior edge architect hands the customer, generated from
// the inventory and the rendered files (firewall rules, K3s config, Flux sizing): every factual sentence is
// computed, and test/plan/derived.test.ts checks it against the rendered bytes. One data model (`planData`)
// feeds Markdown, the appendix (appendix.ts) and JSON; each section of the Markdown is a module of its own
// (summary, fleet-section, industry-section, k3s-section, gitops-section, load, ops-section, day2), listed in
// order in `sections()`: a new section is one more entry there.
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';
import { statusPlanLines } from './status-section.ts';
import { tuningFor } from '../k3s/tuning.ts';
import { fluxControllers } from '../flux/components.ts';
import { devicePollInterval } from '../flux/jitter.ts';
import { runsFlux } from '../flux/sync.ts';
import { deviceExposure, portName } from './exposure.ts';
import { siteEgress, type EgressInputs } from './egress.ts';
import { gitopsAgent, memoryBudget, WORKLOAD_FLOOR_MIB } from './memory.ts';
import { describeRule, inboundRules, sshSources } from '../firstboot/firewall.ts';
import { renderK3sConfig } from '../k3s/config.ts';
import { k3sInstallScript } from '../k3s/install.ts';
import { deliveredImageArchives } from '../k3s/images.ts';
import { usableRam } from '../../inventory/boards.ts';
import { day2Markdown, day2Plan } from './day2.ts';
import type { Expiry } from '../../conformance/expiry.ts';
import { counted, names, table } from './md.ts';
import { planSummary, type PlanSummary } from './summary.ts';
import { fleetSection, networkSection } from './fleet-section.ts';
import { gitopsLayout, gitopsSection } from './gitops-section.ts';
import { k3sSection } from './k3s-section.ts';
import { planDiagrams, mermaidBlock } from './diagrams.ts';
import { decisions } from './decisions.ts';
import { BYTES_PER_IDLE_POLL, loadSection, TRANSPORTS, type LoadInputs } from './load.ts';
import { industrySection, industryText, inForce } from './industry-section.ts';
import { conflictLines, offlineLines, tangLines, tangOutage } from './ops-section.ts';
import type { DevicePlan, PlanData, SitePlan } from './model.ts';
import { sourceWords } from './transport.ts';

/** What the shell read or measured for the plan; without it the plan says what it could not know. */
export type PlanInputs = EgressInputs &
  LoadInputs & {
    /** what the inventory's inputs hold that expires (the broker CA): shown with its date under Day 2 */
    expiries?: Expiry[];
  };

function sshFromText(s: ResolvedSite): string {
  const active = s.devices.filter((d) => d.status === 'active');
  const texts = [
    ...new Set(
      active.map((d) => {
        const src = sshSources(d);
        return src === 'any' ? 'anywhere (ssh.allowFrom: any)' : src ? src.join(', ') : 'nowhere: SSH closed (no managementSubnet)';
      }),
    ),
  ];
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
  if (server && server.cluster.kind === 'multi-node-server')
    return `one cluster: server ${server.id} + ${server.cluster.agents.length} agent(s), each joining with its own bootstrap token (valid ${joinWindow} after issue, k3s.joinWindow)`;
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

export function planData(fleet: Fleet, inp: PlanInputs = {}): PlanData {
  const active = fleet.active;
  const { sites, noInbound } = sitePlans(fleet, inp);
  const profiles = k3sProfiles(fleet);
  // polls: only devices running Flux poll, each at its own jittered interval
  const fluxDevices = active.filter(runsFlux);
  const { pollsPerDay, mirroredPollsPerDay } = gitPolls(fleet, fluxDevices);
  const multi = sites.filter((s) => s.multiNode);
  const agents = active.filter((d) => d.cluster.kind === 'multi-node-agent').length;
  const d2 = day2Plan(fleet);
  const ds = decisions(fleet, sites);
  return {
    fleet: {
      name: fleet.name,
      industry: fleet.industry,
      description: fleet.description,
      activeDevices: active.length,
      revokedDevices: fleet.devices.length - active.length,
      regions: fleet.regions.length,
      sites: fleet.sites.length,
      clusters: { singleNode: active.filter((d) => d.cluster.kind === 'single-node').length, multiNode: multi.length, agents },
      fluxDevices: fluxDevices.length,
    },
    specs: hardwareSpecs(fleet),
    sites,
    exposure: { noInbound, text: exposureText(sites, noInbound) },
    k3s: k3sPlan(fleet, profiles, fluxDevices),
    ports: portTable(fleet),
    gitops: {
      url: fleet.gitops.url,
      branch: fleet.gitops.branch,
      interval: fleet.gitops.interval,
      fluxVersion: fleet.gitops.flux.version,
      controllers: fluxControllerList(fleet),
      fluxDevices: fluxDevices.length,
      pollsPerDay,
      mirroredPollsPerDay,
      idleTrafficPerDayBytes: pollsPerDay * BYTES_PER_IDLE_POLL,
      layout: gitopsLayout(fleet),
    },
    offline: offlineLines(fleet, sites),
    tang: tangLines(sites.map((s) => s.tangOutage)),
    conflicts: conflictLines(fleet, sites),
    theft: theftSteps(fleet, sites),
    secrets:
      'Every secret belongs to one device (SSH host key, Flux deploy key, K3s token, LUKS recovery passphrase, SOPS key) or to one site (the site SOPS key for secrets the whole site shares)' +
      (multi.length ? `; at the multi-node site(s) ${names(multi.map((s) => s.id))} each agent joins with its own bootstrap token` : '') +
      '. edgeforge generates them; private parts are OpenPGP-encrypted to the admins in `keys/`, and devices receive only their own.',
    devices: active.map(devicePlan),
    industry: inForce(fleet),
    decisions: ds,
    load: TRANSPORTS.map((t) => ({ transport: t.name, metrics: t.metrics(fleet, inp) })),
    risks: planRisks(fleet, profiles, fluxDevices),
    needsPerson: ds.filter((d) => d.needsPerson).map((d) => `${d.decision[0].toUpperCase()}${d.decision.slice(1)}: ${d.action} (threshold ${d.threshold}).`),
    day2Images: d2.images.map((i) => ({ pull: i.pull, pinned: i.pinned })),
  };
}

/** One device's row: site, profile, role, address, encryption, whether it runs Flux, its ring. */
function devicePlan(d: ResolvedDevice): DevicePlan {
  return {
    id: d.id,
    site: d.siteId,
    profile: d.profileName,
    role: roleName(d),
    address: d.network.mode === 'static' ? d.network.address : undefined,
    encryption: d.encryption.mode,
    flux: runsFlux(d),
    ring: d.canary ? 'canary' : 'stable',
  };
}

/** K3s: the pinned release, how it is installed, what is disabled, the image archives, the profiles and Flux per profile. */
function k3sPlan(fleet: Fleet, profiles: PlanData['k3s']['profiles'], fluxDevices: ResolvedDevice[]): PlanData['k3s'] {
  const agentProfiles = [...new Set(fluxDevices.map((d) => d.profileName))].sort();
  return {
    version: fleet.k3s.version,
    installMode: fleet.k3s.install.mode,
    disable: fleet.k3s.disable,
    imageArchives: deliveredImageArchives(fleet).map((a) => ({ component: a.component, image: a.image, file: a.name })),
    profiles,
    gitopsAgent: agentProfiles.map((name) => ({
      profile: name,
      agent: gitopsAgent(
        fluxDevices.find((d) => d.profileName === name)!,
        fleet,
      ),
    })),
  };
}

/** Each profile's board, memory, storage and disk cipher, with how many active devices use it in which role. */
function hardwareSpecs(fleet: Fleet): PlanData['specs'] {
  return Object.entries(fleet.profiles).map(([name, p]) => {
    const ds = fleet.active.filter((d) => d.profileName === name);
    const roles: Record<string, number> = {};
    for (const d of ds) roles[d.cluster.kind] = (roles[d.cluster.kind] ?? 0) + 1;
    const usable = usableRam(p);
    return {
      profile: name,
      board: p.board,
      ramMiB: p.ramMiB,
      usableRamMiB: usable.mib,
      usableRamBasis: usable.basis,
      storage: `${p.storage.sizeGB} GB ${p.storage.medium}`,
      layout: p.baseImage.layout,
      encryptionCipher: p.cpuAes ? 'aes-xts-plain64' : 'xchacha12,aes-adiantum-plain64',
      devices: ds.length,
      roles,
    };
  });
}

/** One row per site (cluster, encryption, exposure, egress), and whether any device of the fleet accepts an inbound connection. */
function sitePlans(fleet: Fleet, inp: PlanInputs): { sites: SitePlan[]; noInbound: boolean } {
  let noInbound = true;
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
      tangOutage: { site: s.id, reboot: '', option: '' },
    };
    site.tangOutage = tangOutage(s, site);
    if (x.anyInbound) noInbound = false;
    return site;
  });
  return { sites, noInbound };
}

/** One representative device per (profile, cluster role) actually in use, how many it stands for, and its rendered K3s. */
function k3sProfiles(fleet: Fleet): PlanData['k3s']['profiles'] {
  const reps = new Map<string, { d: ResolvedDevice; n: number }>();
  for (const d of fleet.active) {
    const k = `${d.profileName}\0${roleName(d)}`;
    const have = reps.get(k);
    if (have) have.n++;
    else reps.set(k, { d, n: 1 });
  }
  return [...reps.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, { d, n }]) => ({
      profile: d.profileName,
      role: k.split('\0')[1],
      devices: n,
      tuning: tuningFor(d.profile, d.role),
      budget: memoryBudget(d, fleet),
      exampleDevice: d.id,
      config: renderK3sConfig(d, fleet),
      install: k3sInstallScript(d, fleet),
    }));
}

/** Git polls a day over the fleet, and how many of them a site mirror answers. */
function gitPolls(fleet: Fleet, fluxDevices: ResolvedDevice[]): { pollsPerDay: number; mirroredPollsPerDay: number } {
  const mirrors = fleet.gitops.mirrors ?? {};
  let polls = 0;
  let mirroredPolls = 0;
  for (const d of fluxDevices) {
    const perDay = 86400 / devicePollInterval(d.id, fleet.gitops.interval).seconds;
    polls += perDay;
    if (mirrors[d.siteId]) mirroredPolls += perDay;
  }
  return { pollsPerDay: Math.round(polls), mirroredPollsPerDay: Math.round(mirroredPolls) };
}

/** What the devices accept inbound, from the rendered firewall rules, in one paragraph. */
function exposureText(sites: SitePlan[], noInbound: boolean): string {
  if (noInbound) return "No device accepts an inbound connection: the firewall's input policy is drop and nothing is opened.";
  const sshAnywhere = sites.filter((s) => s.ssh.startsWith('anywhere')).map((s) => s.id);
  const sshSubnet = sites.filter((s) => !s.ssh.startsWith('anywhere') && s.ssh !== 'closed' && s.ssh !== '-').map((s) => `${s.id} (${s.ssh})`);
  const portGroups = [false, true]
    .map((open) => {
      const ss = sites.filter((s) => s.inbound && s.inbound.includes('from anywhere') === open);
      return { open, sites: ss.map((s) => s.id), ports: [...new Set(ss.flatMap((s) => s.inboundPorts))] };
    })
    .filter((g) => g.sites.length);
  return [
    "The firewall's input policy is drop; what each device still accepts (read from its rendered nftables rules):",
    sshSubnet.length ? ` SSH from the management subnet at ${names(sshSubnet)};` : '',
    sshAnywhere.length ? ` SSH from anywhere at ${sshAnywhere.length === sites.length && sites.length > 1 ? `every site (${sites.length})` : names(sshAnywhere)} (\`ssh: {allowFrom: any}\`);` : '',
    ...portGroups.map((g) => ` ${g.ports.join(', ')} ${g.open ? 'from anywhere (a node without a static address cannot be named) at' : 'between the nodes of'} ${names(g.sites)};`),
    ' nothing else. Git is pulled: no inbound port is needed for GitOps.',
  ].join('');
}

/** Memory left for workloads below twice the floor, and a GitOps agent over its 100 MB target. */
function planRisks(fleet: Fleet, profiles: PlanData['k3s']['profiles'], fluxDevices: ResolvedDevice[]): string[] {
  const risks: string[] = [];
  const tight = profiles.filter((x) => x.budget.workloadsMiB < 2 * WORKLOAD_FLOOR_MIB);
  if (tight.length)
    risks.push(
      `Little memory left for workloads: ${tight.map((x) => `${x.profile} as ${x.role} ${x.budget.workloadsMiB} MiB`).join('; ')} (floor ${WORKLOAD_FLOOR_MIB} MiB; section "K3s on each spec").`,
    );
  const overAgent = [...new Set(fluxDevices.map((d) => d.profileName))].filter(
    (n) =>
      gitopsAgent(
        fluxDevices.find((d) => d.profileName === n)!,
        fleet,
      ).requestMiB *
        2 ** 20 >
      100e6,
  );
  if (overAgent.length) risks.push(`The GitOps agent is over the 100 MB target on ${names(overAgent)} (section "K3s on each spec").`);
  return risks;
}

/** When a device is stolen: revoke, what it rotates, what must happen elsewhere, what protects its data, replace. */
function theftSteps(fleet: Fleet, sites: SitePlan[]): string[] {
  const example = fleet.active[0]?.id ?? '<device-id>';
  const exampleSite = fleet.active[0]?.siteId ?? '<region>/<site>';
  const ids = (xs: SitePlan[]) => xs.map((s) => s.id);
  const tangSites = sites.filter((s) => s.tangRequired);
  const plainSites = sites.filter((s) => s.encryptionMode === 'none');
  const clearSeedSites = sites.filter((s) => s.encryptionMode !== 'none' && s.secretsOnSeed === 'clear');
  const sealedSites = sites.filter((s) => s.secretsOnSeed === 'sealed');
  return [
    `Mark it: \`edgeforge revoke ${example} --reason stolen\` updates the inventory (comments kept) and writes a signed revocation record.`,
    `It rotates what the device could still use: the site SOPS key for ${exampleSite} (site secrets re-encrypted to the remaining devices and admins), and removes clusters/${exampleSite}/${example} from the GitOps repository.`,
    `The record lists what must happen elsewhere, with the commands: ${sourceWords(fleet).revoke}, destroy the escrowed recovery key.`,
    tangSites.length
      ? `At ${counted(ids(tangSites), 'site')} the data volume needs the site's tang server to unlock: carried off-site the device stays locked. Rotate that site's tang keys if the device could have reached tang after it was taken.`
      : 'No site needs tang to unlock: the data volume protection relies on TPM2 or is off (see encryption per site).',
    plainSites.length
      ? `Sites without encryption (${names(ids(plainSites))}): the root filesystem holds K3s's state and the device's secrets in clear; revoke closes what they open. Add a tang server there.`
      : 'Every site encrypts the data volume.',
    clearSeedSites.length || plainSites.length
      ? `One-time secrets travel in clear on the seed until first boot at ${counted([...ids(plainSites), ...ids(clearSeedSites)], 'site')}${sealedSites.length ? `; sealed to tang at ${counted(ids(sealedSites), 'site')}` : ''} (save the tang advertisement in the inventory to seal them).`
      : `One-time secrets travel sealed to each site's tang server (${counted(ids(sealedSites), 'site')}).`,
    `Then \`edgeforge replace ${example} --serial NEW-SERIAL\` gives the slot a fresh identity and builds the replacement's artifacts.`,
  ];
}

/** "single-node server", "cluster server" or "agent": the role words of the plan's tables. */
export function roleName(d: Pick<ResolvedDevice, 'cluster'>): string {
  return d.cluster.kind === 'multi-node-agent' ? 'agent' : d.cluster.kind === 'multi-node-server' ? 'cluster server' : 'single-node server';
}

function fluxControllerList(fleet: Fleet): string[] {
  try {
    return fluxControllers(fleet);
  } catch {
    return [];
  }
}

interface Section {
  title: string;
  body: string[];
}

function sections(fleet: Fleet, p: PlanData, inp: PlanInputs): Section[] {
  const dia = planDiagrams(fleet, p);
  return [
    { title: 'Fleet', body: [...mermaidBlock(dia.topology), ...fleetSection(p)] },
    { title: 'Network', body: networkSection(p) },
    { title: 'Industry and the decisions the device count drives', body: industrySection(fleet, p.decisions) },
    { title: 'K3s on each spec', body: k3sSection(p) },
    { title: 'GitOps: pull only', body: [...mermaidBlock(dia.pullPath), ...gitopsSection(fleet, p)] },
    {
      title: 'Central load',
      body: [
        `What the fleet asks of the central services, per transport. Polls and status messages are computed from the inventory; bytes say whether they were measured.`,
        '',
        ...loadSection(
          p.load.map((l) => l.metrics),
          table,
        ),
      ],
    },
    {
      title: 'First boot',
      body: [
        ...mermaidBlock(dia.firstBoot),
        'One program (`edgeforge-firstboot`, the same for a flashed card and `provision`) runs these steps in order and keeps a journal: after a reboot or a power cut it resumes at the first unfinished step; `sudo edgeforge-firstboot status` says where it is.',
        '',
      ],
    },
    { title: 'Offline operation', body: [...p.offline.map((x) => `- ${x}`), '', '### A reboot while tang is unreachable', '', ...p.tang.map((x) => `- ${x}`), ''] },
    { title: 'Sync conflicts and rollouts', body: [...p.conflicts.map((x) => `- ${x}`), ''] },
    { title: 'When a device is stolen', body: [...mermaidBlock(dia.theft), ...p.theft.map((x, i) => `${i + 1}. ${x}`), ''] },
    { title: 'Secrets', body: [p.secrets, ''] },
    { title: 'Fleet status', body: [...statusPlanLines(fleet).map((x) => `- ${x}`), ''] },
    { title: 'Day 2: K3s upgrades, windows, certificate renewal', body: day2Markdown(fleet, table, inp.expiries) },
  ];
}

function summaryMarkdown(fleet: Fleet, p: PlanData, sum: PlanSummary): string[] {
  const f = p.fleet;
  const o: string[] = [];
  o.push(`# ${f.name} — edge fleet architecture`, '');
  o.push(`${f.description ? f.description + '. ' : ''}Industry: **${f.industry}** (${industryText(fleet)}).`, '');
  o.push(
    '## At a glance',
    '',
    table(
      ['', ''],
      sum.glance.map(([k, v]) => [`**${k}**`, v]),
    ),
    '',
  );
  o.push('## The design in ten lines', '', ...sum.design.map((x, i) => `${i + 1}. ${x}`), '');
  o.push('## Risks', '', ...(sum.risks.length ? sum.risks.map((x) => `- ${x}`) : ['- None found in the inventory.']), '');
  o.push('## What needs a person', '', ...sum.needsPerson.map((x) => `- ${x}`), '');
  return o;
}

/** `inp`: what the shell read for the plan (the Flux bundle's controller images); without it the plan says what it could not list. */
export function renderPlanMarkdown(fleet: Fleet, inp: PlanInputs = {}): string {
  const p = planData(fleet, inp);
  const o = summaryMarkdown(fleet, p, planSummary(fleet, p));
  sections(fleet, p, inp).forEach((s, i) => o.push(`## ${i + 1}. ${s.title}`, '', ...s.body));
  return (
    o
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd() + '\n'
  );
}

export function renderPlanJson(fleet: Fleet, inp: PlanInputs = {}): string {
  const p = planData(fleet, inp);
  return JSON.stringify({ ...p, summary: planSummary(fleet, p), status: statusPlanLines(fleet), day2: day2Plan(fleet, inp.expiries) }, null, 2) + '\n';
}
