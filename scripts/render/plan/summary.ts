// The plan's first page: the fleet at a glance, the design in ten lines, the risks and what needs a person —
// each line computed from the plan's own data, so the summary never says what the sections below do not.
import type { Fleet } from '../../inventory/fleet.ts';
import type { PlanData } from './model.ts';
import { k3sInstallPinProblem } from '../k3s/install.ts';
import { counted, names } from './md.ts';
import { sourceWords } from './transport.ts';

export interface PlanSummary {
  glance: [string, string][];
  design: string[];
  risks: string[];
  needsPerson: string[];
}

const ids = (xs: { id: string }[]) => xs.map((x) => x.id);

export function planSummary(fleet: Fleet, p: PlanData): PlanSummary {
  const f = p.fleet;
  const sites = p.sites;
  const tang = sites.filter((s) => s.tangRequired);
  const plain = sites.filter((s) => s.encryptionMode === 'none');
  const clearSeed = sites.filter((s) => s.encryptionMode !== 'none' && s.secretsOnSeed === 'clear');
  const sshAny = sites.filter((s) => s.sshFrom.startsWith('anywhere'));
  const openK3s = sites.filter((s) => s.inbound.includes('from anywhere'));
  const canary = sites.filter((s) => s.canary);
  const mirrors = sites.filter((s) => s.registryMirror);
  const status = fleet.status;
  const w = sourceWords(fleet);
  const byProfile = p.specs.filter((s) => s.devices).map((s) => `${s.devices} × ${s.profile} (${s.board}, ${s.ramMiB / 1024} GB)`);
  const glance: [string, string][] = [
    ['devices', `${f.activeDevices} active${f.revokedDevices ? `, ${f.revokedDevices} revoked or replaced` : ''}`],
    ['where', `${f.sites} site(s) in ${f.regions} region(s); ${counted(ids(canary), 'canary site')}`],
    ['hardware', byProfile.join('; ')],
    ['clusters', `${f.clusters.singleNode} single-node K3s${f.clusters.multiNode ? `; ${f.clusters.multiNode} multi-node cluster(s) with ${f.clusters.agents} agent(s)` : ''}`],
    ['K3s', `${p.k3s.version}, installed ${p.k3s.installMode}`],
    ['GitOps', w.glance(f.fluxDevices, p.gitops.pollsPerDay)],
    ['disk encryption', `${sites.length - plain.length} of ${sites.length} site(s) (${[...new Set(sites.map((s) => s.encryptionMode))].join(', ')})`],
    ['status', status ? `every ${status.period} to ${status.broker.url}` : 'off (no `status:` block)'],
    ['industry', `${f.industry}`],
  ];
  const design = [
    `Every server is its own K3s on SQLite (no etcd quorum to lose)${f.clusters.multiNode ? `; at ${f.clusters.multiNode} site(s) agents join one server` : ''}.`,
    w.design,
    `Each device has its own identity: SSH host key, ${w.credential}, K3s token, SOPS key, recovery passphrase; site secrets per site.`,
    canary.length
      ? `Workloads and K3s upgrades reach the canary ring first — ${counted(ids(canary), 'site')} — then the stable ring.`
      : 'There is no canary ring: workloads and K3s upgrades reach every site together.',
    `K3s upgrades and certificate renewal run only inside each site's maintenance window.`,
    `K3s ${p.k3s.installMode === 'airgap' ? 'and its images come from the disk image: first boot needs no internet' : 'is downloaded at first boot at a pinned version whose install script is checked against its sha256'}.`,
    `The data volume (K3s state, images, Flux cache) is LUKS2 at ${sites.length - plain.length} of ${sites.length} site(s), unlocked by tang and/or TPM2 — never by a key on the device.`,
    `The firewall drops what it was not told to accept: SSH at ${sites.filter((s) => !s.sshFrom.startsWith('nowhere')).length} of ${sites.length} site(s) (${sshAny.length ? `from anywhere at ${sshAny.length}` : 'only from a management subnet'}), K3s ports at ${sites.filter((s) => s.inbound).length} multi-node site(s)${openK3s.length ? ` (from anywhere at ${openK3s.length})` : " (only between the site's nodes)"}; nothing else.`,
    mirrors.length
      ? `Images come through a site registry mirror at ${counted(ids(mirrors), 'site')}; elsewhere from the public registries.`
      : 'No site registry mirror: every device pulls its images from the public registries.',
    status
      ? `Devices report their state outbound over MQTT every ${status.period}; \`edgeforge status\` lists who needs a person.`
      : 'Status reporting is off: a silent device is noticed only by its workloads.',
  ];
  const risks: string[] = [];
  if (plain.length) risks.push(`No disk encryption at ${counted(ids(plain), 'site')}: a stolen device gives up its K3s state and secrets.`);
  if (clearSeed.length) risks.push(`One-time secrets travel in clear on the seed card until first boot at ${counted(ids(clearSeed), 'site')} (no tang advertisement saved).`);
  if (tang.length) risks.push(`A reboot while its tang server is unreachable leaves the device up but running no workloads at ${counted(ids(tang), 'site')} (section "Offline operation").`);
  if (sshAny.length) risks.push(`SSH accepted from anywhere at ${counted(ids(sshAny), 'site')} (\`ssh: {allowFrom: any}\`).`);
  if (openK3s.length) risks.push(`K3s ports open from anywhere at ${counted(ids(openK3s), 'site')} (agents without a static address).`);
  if (!canary.length) risks.push('No canary ring: a bad change or K3s release reaches every site at once.');
  if (!status) risks.push('No status reporting: nobody is told when a device stops pulling or fails its first boot.');
  risks.push(...p.risks);
  const needsPerson: string[] = [];
  const pin = k3sInstallPinProblem(fleet);
  if (pin) needsPerson.push(`Pin K3s's install script: \`k3s.install.installScriptSha256\` is the all-zeros placeholder, so every device would refuse to install.`);
  needsPerson.push(w.register(f.fluxDevices));
  const tangHosts = [...new Set(fleet.active.flatMap((d) => (d.encryption.mode.includes('tang') ? d.encryption.tang.map((t) => new URL(t.url).host) : [])))];
  if (tangHosts.length) needsPerson.push(`Run and back up ${tangHosts.length} tang server(s) (${names(tangHosts)}): their keys decide whether a device starts its workloads.`);
  if (clearSeed.length) needsPerson.push(`Save the tang advertisement of ${counted(ids(clearSeed), 'site')} in the inventory so one-time secrets travel sealed.`);
  if (status) needsPerson.push('Run the status broker: `edgeforge status broker-config --to DIR` writes its users, ACL and TLS listener.');
  const unpinned = p.day2Images.filter((i) => !i.pinned).length;
  if (unpinned) needsPerson.push(`Pin the digest of ${unpinned} K3s upgrade image(s) in \`k3s.upgrade\` (tags only now).`);
  needsPerson.push(...p.needsPerson);
  return { glance, design: design.slice(0, 10), risks, needsPerson };
}
