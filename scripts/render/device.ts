// Everything one device gets, as one value: Fleet + device + its secrets -> RenderedFile[].
// Pure and deterministic (no I/O, no clock, no randomness). The seed (user-data write_files), the disk
// image and `provision` all deliver the same bundle/ files, so the deliveries cannot drift apart.
//
// Layout (relative to OUT/devices/<id>/):
//   seed/user-data, seed/meta-data, seed/network-config      the NoCloud seed
//   bundle/...                                               = /var/lib/edgeforge/bundle/... on the device
//     firstboot.sh                 the first-boot program (kind firstboot)
//     k3s/config.yaml              /etc/rancher/k3s/config.yaml (k3s-config)
//     k3s/registries.yaml          where the site has a mirror (k3s-registries)
//     k3s/airgap/*                 airgap installs only: copied in by the build (not rendered here)
//     flux/*.yaml                  Flux bootstrap for K3s's auto-deploy directory (flux-bootstrap)
//     secrets/*                    host key, K3s tokens (0600; erased on the device after use)
//     sealed-secrets.jwe           sites with a saved tang advertisement: secrets/* and flux/<secret>.yaml sealed
//                                  to the site's tang instead (then neither is in the bundle nor in user-data)
//     ssh/, users/, system/        public host key, authorized_keys, sysctl/nftables/sshd/modules files
//     renewal/                     the K3s certificate-renewal check and its timer (day2/renewal.ts)
//     os/                          with os: the OS updater, the health check, RAUC's keyring (os/compose.ts)
//     SHA256SUMS                   every bundle file's sha256; its own sha256 is the "bundle hash"
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { textFile, type RenderedFile } from './files.ts';
import { sha256Hex } from '../util/hash.ts';
import { bundleSums, SUMS_NAME } from '../manifest/sums.ts';
import { renderK3sConfig, renderRegistries } from './k3s/config.ts';
import { deliveredImageArchives } from './k3s/images.ts';
import { composeFirstboot } from './firstboot/compose.ts';
import { modulesLoadConf, nftablesRules, nftablesService, sshdConf, sysctlConf } from './firstboot/system.ts';
import { renderUserData } from './seed/user-data.ts';
import { firstbootCommand, firstbootUnit } from './firstboot/service.ts';
import { FIRSTBOOT, K3S_AIRGAP } from '../device/layout.ts';
import path from 'node:path';
import { instanceId, renderMetaData } from './seed/meta-data.ts';
import { renderNetworkConfig } from './seed/network-config.ts';
import { ringAirgap, ringOf } from './day2/rings.ts';
import { renewalStage } from './day2/stages.ts';
import { isAbDevice } from '../inventory/os.ts';
import type { DeviceSecrets, DeviceStage } from './device-stage.ts';

export type { DeviceSecrets, DeviceStage } from './device-stage.ts';

/**
 * The stages a build adds to the core files, in the order they run: their first-boot fragments keep this
 * order (certificate renewal, built in, runs between status and os), and encryption runs last because it
 * seals the one-time secrets the others rendered. Each is optional, except `os` for a device with OS updates.
 */
export const STAGE_SLOTS = ['flux', 'status', 'os', 'encryption'] as const;
export type StageSlot = (typeof STAGE_SLOTS)[number];
export type RenderOptions = Partial<Record<StageSlot, DeviceStage>>;

/**
 * The airgap files one device installs from (provision delivers them into its bundle's k3s/airgap/, a flashed
 * card reads them from the fleet base's K3s partition): its ring's K3s release (day2/rings.ts) and every
 * pinned image archive. Nothing for online installs.
 */
export function airgapFiles(fleet: Pick<Fleet, 'k3s' | 'imageArchives'>, d: Pick<ResolvedDevice, 'canary'>): { name: string; sha256: string }[] {
  const a = ringAirgap(fleet, ringOf(d));
  if (!a) return [];
  return [
    { name: K3S_AIRGAP.binary, sha256: a.sha256.binary },
    { name: K3S_AIRGAP.images, sha256: a.sha256.images },
    { name: K3S_AIRGAP.installScript, sha256: a.sha256.installScript },
    ...deliveredImageArchives(fleet).map((p) => ({ name: p.name, sha256: p.sha256 })),
  ];
}

const byPath = (a: RenderedFile, b: RenderedFile) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

type BundleFile = RenderedFile & { text?: string };

/** What every device gets whatever the stages: K3s config, its secrets, host key, users, system files. */
function coreFiles(fleet: Fleet, d: ResolvedDevice, secrets: DeviceSecrets): BundleFile[] {
  const bundle: BundleFile[] = [];
  const add = (rel: string, kind: RenderedFile['kind'], text: string, secret = false, mode?: number) => {
    const f = textFile(`bundle/${rel}`, kind, text, secret);
    bundle.push({ ...f, ...(mode !== undefined ? { mode } : {}), text });
  };
  add('k3s/config.yaml', 'k3s-config', renderK3sConfig(d, fleet));
  const registries = renderRegistries(d);
  if (registries) add('k3s/registries.yaml', 'k3s-registries', registries);
  add('secrets/ssh_host_ed25519_key', 'other', secrets.sshHostKey.privateKey, true);
  add('ssh/ssh_host_ed25519_key.pub', 'other', secrets.sshHostKey.publicKey.trim() + '\n');
  if (d.cluster.kind !== 'multi-node-agent') add('secrets/k3s-token', 'other', secrets.k3sToken + '\n', true);
  if (d.cluster.kind !== 'single-node') {
    if (!secrets.agentToken) throw new Error(`${d.id}: a multi-node cluster member needs its agent token (an agent: its own bootstrap token; the server: its agent-token)`);
    add('secrets/k3s-agent-token', 'other', secrets.agentToken + '\n', true);
  }
  for (const u of d.users) add(`users/${u.name}.authorized_keys`, 'other', u.sshAuthorizedKeys.join('\n') + '\n');
  add('system/sysctl.conf', 'other', sysctlConf());
  add('system/sshd.conf', 'other', sshdConf());
  add('system/modules-load.conf', 'other', modulesLoadConf());
  add('system/nftables.nft', 'other', nftablesRules(d, fleet));
  add('system/edgeforge-nftables.service', 'other', nftablesService());
  add(`system/${FIRSTBOOT.unit}`, 'other', firstbootUnit());
  add(`system/${path.posix.basename(FIRSTBOOT.command)}`, 'other', firstbootCommand(), false, 0o755);
  return bundle;
}

/** Runs every stage in order over the bundle: their files join it, their fragments are collected, what they withhold leaves. */
function runStages(fleet: Fleet, d: ResolvedDevice, secrets: DeviceSecrets, opts: RenderOptions, bundle: BundleFile[]): { fragments: string[]; withheld: Set<string> } {
  if (isAbDevice(fleet, d) && !opts.os) throw new Error(`${d.id}: the inventory gives it OS updates (os:), but the build has no OS-update certificate for the device's keyring`);
  const stages: [string, DeviceStage | undefined][] = [
    ['flux', opts.flux],
    ['status', opts.status],
    ['renewal', renewalStage],
    ['os', opts.os],
    ['encryption', opts.encryption],
  ];
  const fragments: string[] = [];
  const withheld = new Set<string>();
  const paths = new Set(bundle.map((f) => f.path));
  for (const [name, stage] of stages) {
    if (!stage) continue;
    const r = stage.render(d, { fleet, secrets, bundle });
    for (const f of r.files) {
      if (!f.path.startsWith('bundle/') || paths.has(f.path)) throw new Error(`${name} stage file ${f.path} must be a new file under bundle/`);
      paths.add(f.path);
      bundle.push(f);
    }
    if (r.fragment !== undefined) fragments.push(r.fragment);
    for (const p of r.withhold ?? []) withheld.add(p);
  }
  return { fragments, withheld };
}

export function renderDevice(fleet: Fleet, d: ResolvedDevice, secrets: DeviceSecrets, opts: RenderOptions = {}): RenderedFile[] {
  const all = coreFiles(fleet, d, secrets);
  const { fragments, withheld } = runStages(fleet, d, secrets, opts, all);
  const bundle = withheld.size ? all.filter((f) => !withheld.has(f.path)) : all;
  const firstboot = composeFirstboot(d, fleet, fragments);
  bundle.push({ ...textFile('bundle/firstboot.sh', 'firstboot', firstboot), text: firstboot });
  bundle.sort(byPath);

  // sha256sum -c format; airgap entries come from the inventory's pins (the build copies those files)
  const sums = bundleSums([
    ...bundle.map((f) => ({ sha256: sha256Hex(f.bytes), rel: f.path.slice('bundle/'.length) })),
    ...airgapFiles(fleet, d).map((a) => ({ sha256: a.sha256, rel: `k3s/airgap/${a.name}` })),
  ]);
  const sumsFile = { ...textFile(`bundle/${SUMS_NAME}`, 'other', sums), text: sums };
  const userData = textFile(
    'seed/user-data',
    'user-data',
    renderUserData({
      device: d,
      fleet,
      // sealed: the private host key travels only inside the sealed secrets, never in clear on the seed
      hostKey: withheld.has('bundle/secrets/ssh_host_ed25519_key') ? undefined : secrets.sshHostKey,
      bundle: [...bundle, sumsFile],
      system: [
        { path: '/etc/sysctl.d/90-edgeforge-k3s.conf', text: sysctlConf(), mode: 0o644 },
        // the first-boot service, ready before runcmd enables and starts it
        { path: `/etc/systemd/system/${FIRSTBOOT.unit}`, text: firstbootUnit(), mode: 0o644 },
        { path: FIRSTBOOT.command, text: firstbootCommand(), mode: 0o755 },
      ],
    }),
    true,
  );
  const networkConfig = textFile('seed/network-config', 'network-config', renderNetworkConfig(d));
  // plain RenderedFile values out (the text was only a shortcut for user-data)
  const rest: RenderedFile[] = [...bundle, sumsFile].map(({ text: _t, ...f }) => f);
  rest.push(userData, networkConfig);
  const metaData = textFile('seed/meta-data', 'meta-data', renderMetaData(d.id, instanceId(d.id, rest)));
  return [...rest, metaData].sort(byPath);
}

/** The bundle hash the device records in applied.json: sha256 of bundle/SHA256SUMS. */
export function bundleHash(files: RenderedFile[]): string {
  const sums = files.find((f) => f.path === `bundle/${SUMS_NAME}`);
  if (!sums) throw new Error(`no bundle/${SUMS_NAME} among the rendered files`);
  return sha256Hex(sums.bytes);
}
