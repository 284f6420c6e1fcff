// The fleet architecture report: what a senior edge architect hands the customer, generated from
// the inventory's real values. One data model (`planData`) feeds both Markdown and JSON.
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';
import { tuningFor, PROTECT_KERNEL_SYSCTLS, type Tuning } from '../k3s/tuning.ts';
import { describeRule, inboundRules, sshSources } from '../firstboot/firewall.ts';
import { renderK3sConfig } from '../k3s/config.ts';
import { k3sInstallScript } from '../k3s/install.ts';

/** One unchanged-poll of a Git repository over SSH: handshake + ref advertisement (an estimate, ~7 KB, not measured here: the SSH handshake dominates). */
export const BYTES_PER_IDLE_POLL = 7 * 1024;

export function parseDurationSeconds(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/([0-9]+)(ms|s|m|h)/g)) total += Number(m[1]) * ({ ms: 0.001, s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2]];
  return total;
}

export interface PlanData {
  fleet: { name: string; industry: string; description?: string; activeDevices: number; revokedDevices: number; regions: number; sites: number };
  specs: { profile: string; board: string; ramMiB: number; storage: string; layout: string; encryptionCipher: string; devices: number; roles: Record<string, number> }[];
  sites: { id: string; region: string; site: string; location?: string; devices: number; cluster: string; network: string; encryption: string; registryMirror?: string; managementSubnet?: string; sshFrom: string; canary: boolean }[];
  k3s: { version: string; installMode: string; disable: string[]; profiles: { profile: string; role: string; tuning: Tuning; exampleDevice: string; config: string; install: string }[] };
  gitops: { url: string; branch: string; interval: string; pollsPerDay: number; idleTrafficPerDayBytes: number; layout: string[] };
  /** per site, devices with the same inbound rules grouped: exactly what their nftables.nft accepts (firewall.ts) */
  ports: { site: string; devices: string[]; proto: string; ports: string; from: string; why: string }[];
  offline: string[];
  conflicts: string[];
  theft: string[];
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
  if (e.mode === 'none') return 'none (secrets in clear until first boot)';
  const tang = e.tang.map((t) => new URL(t.url).host).join(', ');
  if (e.mode === 'tang') return `tang (${tang})`;
  if (e.mode === 'tpm2') return 'TPM2';
  return `tang (${tang}) + TPM2, threshold ${e.threshold}`;
}

export function planData(fleet: Fleet): PlanData {
  const active = fleet.active;
  const specs = Object.entries(fleet.profiles).map(([name, p]) => {
    const ds = active.filter((d) => d.profileName === name);
    const roles: Record<string, number> = {};
    for (const d of ds) roles[d.cluster.kind] = (roles[d.cluster.kind] ?? 0) + 1;
    return {
      profile: name,
      board: p.board,
      ramMiB: p.ramMiB,
      storage: `${p.storage.sizeGB} GB ${p.storage.medium}`,
      layout: p.baseImage.layout,
      encryptionCipher: p.cpuAes ? 'aes-xts-plain64' : 'xchacha12,aes-adiantum-plain64',
      devices: ds.length,
      roles,
    };
  });
  const sites = fleet.sites.map((s) => {
    const first = s.devices.find((d) => d.status === 'active') ?? s.devices[0];
    const nets = new Set(s.devices.map((d) => d.network.mode));
    return {
      id: s.id,
      region: s.region,
      site: s.name,
      location: s.location,
      devices: s.devices.filter((d) => d.status === 'active').length,
      cluster: clusterText(s, fleet.k3s.joinWindow ?? '30d'),
      network: [...nets].join(' + '),
      encryption: encryptionText(first),
      registryMirror: first?.registryMirror?.url,
      managementSubnet: first?.managementSubnet,
      sshFrom: sshFromText(s),
      canary: s.canary,
    };
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
    .map(([k, d]) => ({
      profile: d.profileName,
      role: k.split('\0')[1],
      tuning: tuningFor(d.profile, d.role),
      exampleDevice: d.id,
      config: renderK3sConfig(d, fleet),
      install: k3sInstallScript(d, fleet),
    }));
  const intervalS = parseDurationSeconds(fleet.gitops.interval);
  const pollsPerDay = Math.round((86400 / intervalS) * active.length);
  const layout = [
    'infrastructure/base/         # shared controllers and policies',
    'apps/base/, apps/stable/, apps/canary/   # workloads and the two rollout rings',
    'overlays/',
  ];
  for (const r of fleet.regions) {
    layout.push(`  regions/${r.name}/          # region overlay: infrastructure + region patches`);
  }
  for (const r of fleet.regions) {
    for (const s of r.sites) layout.push(`  sites/${r.name}/${s.name}/   # its region + the ${s.canary ? 'canary ring: changes land here first' : 'stable ring'}`);
  }
  layout.push('clusters/');
  for (const r of fleet.regions) {
    for (const s of r.sites) {
      const ds = s.devices.filter((d) => d.status === 'active' && d.cluster.kind !== 'multi-node-agent');
      if (!ds.length) continue;
      layout.push(`  ${r.name}/${s.name}/`);
      for (const d of ds.slice(0, 3)) layout.push(`    ${d.id}/        # this device's Flux entry point (its site overlay + its own patches)`);
      if (ds.length > 3) layout.push(`    … ${ds.length - 3} more device(s)`);
    }
  }
  // align the comments
  const width = Math.max(...layout.map((l) => (l.includes('#') ? l.slice(0, l.indexOf('#')).trimEnd().length : 0))) + 2;
  for (let i = 0; i < layout.length; i++) {
    const at = layout[i].indexOf('#');
    if (at > 0) layout[i] = layout[i].slice(0, at).trimEnd().padEnd(width) + layout[i].slice(at);
  }
  const example = active[0]?.id ?? '<device-id>';
  const exampleSite = active[0]?.siteId ?? '<region>/<site>';
  const tangSites = sites.filter((s) => s.encryption.startsWith('tang'));
  const plainSites = sites.filter((s) => s.encryption.startsWith('none'));
  return {
    fleet: { name: fleet.name, industry: fleet.industry, description: fleet.description, activeDevices: active.length, revokedDevices: fleet.devices.length - active.length, regions: fleet.regions.length, sites: fleet.sites.length },
    specs,
    sites,
    k3s: { version: fleet.k3s.version, installMode: fleet.k3s.install.mode, disable: fleet.k3s.disable, profiles },
    gitops: { url: fleet.gitops.url, branch: fleet.gitops.branch, interval: fleet.gitops.interval, pollsPerDay, idleTrafficPerDayBytes: pollsPerDay * BYTES_PER_IDLE_POLL, layout },
    ports: portTable(fleet),
    offline: [
      'Each device reconciles from its own local copy: source-controller keeps the last fetched revision on persistent storage, so a reboot while offline re-applies the last known good state instead of waiting for the network.',
      `Polling every ${fleet.gitops.interval} with per-device jitter: a link that drops for hours simply means missed polls; nothing queues up and nothing needs to reach the device.`,
      'When a device returns after days offline it fetches only the newest revision of its branch and converges in one reconcile: intermediate commits are never replayed.',
      'K3s, containerd images and the Flux artifact cache live on the encrypted data volume; if tang is unreachable at a reboot the volume unlock retries with backoff and K3s waits for it — nothing is lost, the device is just late.',
      'Images come from the site registry mirror where one is configured, so a plant with a slow uplink pulls each image over the WAN once.',
    ],
    conflicts: [
      'Git is the single source of truth. Local changes (kubectl edit on a device) are drift: the next reconcile reverts them, and `prune: true` removes objects that left Git.',
      'Staged rollouts go through overlays, not through devices: change a base, then promote the change region by region and site by site; the canary site(s) ' + (sites.filter((s) => s.canary).map((s) => s.id).join(', ') || '(none marked yet: set `canary: true` on a site)') + ' take it first.',
      'Maintenance windows: set `suspend: true` on a site\'s or device\'s Kustomization in Git; the device keeps running its current state and resumes when the flag is removed.',
      'Two operators changing the same path meet in a Git merge conflict at review time — on a workstation, never on a device.',
    ],
    theft: [
      `Mark it: \`edgeforge revoke ${example} --reason stolen\` updates the inventory (comments kept) and writes a signed revocation record.`,
      `It rotates what the device could still use: the site SOPS key for ${exampleSite} (site secrets re-encrypted to the remaining devices and admins), and removes clusters/${exampleSite}/${example} from the GitOps repository.`,
      'The record lists what must happen elsewhere, with the commands: delete the device\'s read-only deploy key on the Git host (by fingerprint), destroy the escrowed recovery key.',
      tangSites.length
        ? `The data volume is bound to the site tang server (${tangSites.map((s) => s.id).join(', ')}): carried off-site the device stays locked. Rotate that site's tang keys if the device could have reached tang after it was taken.`
        : 'No site uses tang: the data volume protection relies on TPM2 or is off (see encryption per site).',
      plainSites.length
        ? `Sites without encryption (${plainSites.map((s) => s.id).join(', ')}): a device stolen before its first boot exposes its one-time secrets from the seed in clear; revoke closes that window. Add a tang server there.`
        : 'Every site encrypts the data volume; one-time secrets travel sealed to the site and are erased from the boot partition after first boot.',
      `Then \`edgeforge replace ${example} --serial NEW-SERIAL\` gives the slot a fresh identity and builds the replacement's artifacts.`,
    ],
  };
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

export function renderPlanMarkdown(fleet: Fleet): string {
  const p = planData(fleet);
  const o: string[] = [];
  o.push(`# ${p.fleet.name} — edge fleet architecture`, '');
  o.push(
    `${p.fleet.description ? p.fleet.description + '. ' : ''}Industry: **${p.fleet.industry}**. ${p.fleet.activeDevices} active ARM64 devices in ${p.fleet.sites} sites across ${p.fleet.regions} regions${p.fleet.revokedDevices ? ` (${p.fleet.revokedDevices} revoked or replaced)` : ''}. Every device runs its own K3s and pulls its desired state from Git with Flux; nothing ever connects into a device.`,
    '',
  );
  o.push('## 1. Fleet', '', '### Devices per spec', '');
  o.push(table(['profile', 'board', 'RAM', 'storage', 'base image', 'data-volume cipher', 'devices'], p.specs.map((s) => [s.profile, s.board, `${s.ramMiB / 1024} GB`, s.storage, s.layout, s.encryptionCipher, s.devices])), '');
  o.push('### Devices per site', '');
  o.push(table(['site', 'location', 'devices', 'K3s', 'network', 'encryption', 'registry mirror', 'SSH from'], p.sites.map((s) => [`${s.id}${s.canary ? ' (canary)' : ''}`, s.location, s.devices, s.cluster, s.network, s.encryption, s.registryMirror ?? '-', s.sshFrom])), '');
  o.push('### Inbound ports', '');
  o.push(
    'What each device\'s firewall (`/etc/edgeforge/nftables.nft`, input policy drop) accepts besides replies to its own connections and loopback; rendered from the same rule list as the firewall. Devices of a site with the same rules share rows.',
    '',
  );
  o.push(table(['site', 'devices', 'protocol', 'ports', 'from', 'why'], p.ports.map((r) => [r.site, r.devices.length > 3 ? `${r.devices.slice(0, 2).join(', ')} … (${r.devices.length})` : r.devices.join(', '), r.proto, r.ports, r.from, r.why])), '');
  o.push('## 2. K3s on each spec', '');
  o.push(
    `K3s ${p.k3s.version}, installed ${p.k3s.installMode === 'online' ? 'online at a pinned version (install script checked against its sha256 before it runs)' : 'from a local airgap bundle (binary, images and install script each checked against the inventory sha256)'}. Single-node servers use SQLite (no \`cluster-init\`: etcd costs ~130 MB more and needs quorum). Pod traffic uses flannel's \`wireguard-native\` backend; Secrets are encrypted at rest; \`protect-kernel-defaults\` is on, with its sysctls (${PROTECT_KERNEL_SYSCTLS.map(([k, v]) => `\`${k}=${v}\``).join(', ')}) shipped in the seed. Disabled: ${p.k3s.disable.map((d) => `\`${d}\``).join(', ') || 'nothing'}.`,
    '',
  );
  o.push(
    table(
      ['profile', 'role', 'RAM', 'system-reserved', 'kube-reserved', 'evict (hard/soft)', 'for pods', 'max-pods', 'logs'],
      p.k3s.profiles.map((x) => [x.profile, x.role, `${x.tuning.ramMiB} MiB`, `${x.tuning.systemReservedMiB} MiB`, `${x.tuning.kubeReservedMiB} MiB`, `${x.tuning.evictionHardMiB}/${x.tuning.evictionSoftMiB} MiB`, `~${x.tuning.allocatableMiB} MiB`, x.tuning.maxPods, `${x.tuning.logMaxFiles}×${x.tuning.logMaxSize}`]),
    ),
    '',
  );
  o.push("K3s's own kubelet defaults evict only on disk pressure; `eviction-hard` with `memory.available` is what keeps the kernel OOM killer away from K3s itself on a 2 GB board.", '');
  for (const x of p.k3s.profiles) {
    o.push(`### ${x.profile} — ${x.role} (e.g. \`${x.exampleDevice}\`)`, '', '`/etc/rancher/k3s/config.yaml`:', '', '```yaml', x.config.trimEnd(), '```', '', 'Install (run by the first-boot program):', '', '```bash', x.install, '```', '');
  }
  o.push('## 3. GitOps: pull only', '');
  o.push(
    `Repository \`${p.gitops.url}\`, branch \`${p.gitops.branch}\`, host key pinned in the inventory. Each device runs only Flux's source-controller and kustomize-controller (memory-limited for 2 GB boards) and reconciles \`clusters/<region>/<site>/<device>\`. Git needs no inbound port: the firewall's input policy is drop, and what it accepts is the port table in section 1 (SSH only from a site's management subnet, or from anywhere where the inventory says \`ssh: {allowFrom: any}\`; K3s ports only between the nodes of a multi-node site).`,
    '',
    '```text',
    ...p.gitops.layout,
    '```',
    '',
    `Polling every ${p.gitops.interval} with per-device jitter: ${p.gitops.pollsPerDay.toLocaleString('en-US')} polls a day for the fleet, about ${human(p.gitops.idleTrafficPerDayBytes)} a day of Git-over-SSH traffic when nothing changes (≈${BYTES_PER_IDLE_POLL / 1024} KB per idle poll). A read-only mirror per site, or publishing the rendered state as OCI artifacts, moves that load off the central Git host.`,
    '',
  );
  o.push('## 4. Offline operation', '', ...p.offline.map((x) => `- ${x}`), '');
  o.push('## 5. Sync conflicts and rollouts', '', ...p.conflicts.map((x) => `- ${x}`), '');
  o.push('## 6. When a device is stolen', '', ...p.theft.map((x, i) => `${i + 1}. ${x}`), '');
  o.push('## 7. Secrets', '', 'Every secret belongs to one device (SSH host key, Flux deploy key, K3s token, LUKS recovery passphrase, SOPS key) or to one site (the site SOPS key for secrets the whole site shares). edgeforge generates them; private parts are OpenPGP-encrypted to the admins in `keys/`, and devices receive only their own.', '');
  return o.join('\n');
}

export function renderPlanJson(fleet: Fleet): string {
  return JSON.stringify(planData(fleet), null, 2) + '\n';
}
