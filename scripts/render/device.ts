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
import { renewalBundleFiles, renewalFirstbootFragment } from './day2/renewal.ts';
import { ringAirgap, ringOf } from './day2/rings.ts';
import { osBundleFiles, osDay2Fragment } from './os/compose.ts';
import { isAbDevice } from '../inventory/os.ts';

/** The private material a device's rendering needs, as plain strings (the keys stage supplies them). */
export interface DeviceSecrets {
  /** the device's pinned SSH host key, OpenSSH formats */
  sshHostKey: { privateKey: string; publicKey: string };
  /** servers: the K3s token of the cluster they serve */
  k3sToken: string;
  /** multi-node server: its agent-token (no agent has it); multi-node agent: its own bootstrap token "<id>.<secret>" (keys/join-token.ts) */
  agentToken?: string;
  /** Flux's Git deploy key (used by the flux-bootstrap renderer) */
  deployKey?: { privateKey: string; publicKey: string };
  /** the device's SOPS key (used by the flux-bootstrap renderer) */
  sops?: { fingerprint: string; privateKeyArmored: string };
  /** its site's SOPS key (secrets shared by the site's devices) */
  siteSops?: { fingerprint: string; privateKeyArmored: string };
  /** LUKS recovery passphrase (for the disk-encryption stage) */
  luksRecovery?: string;
  /** the device's broker password for fleet status (for the status stage; not a one-time secret) */
  statusPassword?: string;
}

/** A Flux bootstrap renderer (the GitOps stage): file name -> text, placed in K3s's auto-deploy dir. */
export type FluxBootstrapRenderer = (d: ResolvedDevice, fleet: Fleet, secrets: DeviceSecrets) => { name: string; text: string; secret: boolean }[];

/**
 * The disk-encryption stage (devices with encryption.mode other than none): given the device's one-time
 * secret files (as they would sit in bundle/secrets/), returns its own bundle files; `sealed` says it sealed
 * those secrets into one of them (to the site's tang server), and then they are left out of the clear bundle
 * and out of user-data.
 */
export type EncryptionStage = (d: ResolvedDevice, secretFiles: { name: string; bytes: Uint8Array; mode: number }[]) => { files: RenderedFile[]; sealed: boolean };

/** The status stage (scripts/render/status/): the device's reporter files and its first-boot fragment. */
export type StatusStage = (d: ResolvedDevice, secrets: DeviceSecrets) => { files: RenderedFile[]; fragment: string };

export interface RenderOptions {
  fluxBootstrap?: FluxBootstrapRenderer;
  status?: StatusStage;
  encryption?: EncryptionStage;
  /** shell fragments other stages add to the first-boot program (function definitions) */
  firstbootFragments?: string[];
  /** OS updates (inventory os:, docs/os-updates.md): the fleet's OS-update certificate, for the devices' keyring */
  os?: { certPem: string };
}

/**
 * The airgap files the build copies into bundle/k3s/airgap/ (and onto the fleet base's K3s partition), with
 * their pinned sha256: K3s's own three, then every pinned container image archive (scripts/render/k3s/images.ts).
 */
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

export function renderDevice(fleet: Fleet, d: ResolvedDevice, secrets: DeviceSecrets, opts: RenderOptions = {}): RenderedFile[] {
  const bundle: (RenderedFile & { text: string })[] = [];
  const add = (rel: string, kind: RenderedFile['kind'], text: string, secret = false, mode?: number) => {
    const f = textFile(`bundle/${rel}`, kind, text, secret);
    bundle.push({ ...f, ...(mode !== undefined ? { mode } : {}), text });
  };

  const status = opts.status?.(d, secrets);
  // OS updates: the day-2 hook installs the updater too (os/compose.ts); without os: the renewal check's alone
  const ab = isAbDevice(fleet, d);
  if (ab && !opts.os) throw new Error(`${d.id}: the inventory gives it OS updates (os:), but the build has no OS-update certificate for the device's keyring`);
  const os = ab ? opts.os : undefined;
  add('firstboot.sh', 'firstboot', composeFirstboot(d, fleet, [...(opts.firstbootFragments ?? []), ...(status ? [status.fragment] : []), os ? osDay2Fragment() : renewalFirstbootFragment()]));
  // the K3s certificate-renewal check and its timer in the site's maintenance window (day2/renewal.ts)
  const site = fleet.sites.find((x) => x.id === d.siteId);
  if (site) for (const f of renewalBundleFiles(d, site)) bundle.push({ ...f, text: Buffer.from(f.bytes).toString('utf8') });
  if (os && site) for (const f of osBundleFiles(d, fleet, site, os.certPem)) bundle.push({ ...f, text: Buffer.from(f.bytes).toString('utf8') });
  for (const f of status?.files ?? []) {
    if (!f.path.startsWith('bundle/status/')) throw new Error(`status stage file ${f.path} must be under bundle/status/`);
    bundle.push({ ...f, text: Buffer.from(f.bytes).toString('utf8') });
  }
  add('k3s/config.yaml', 'k3s-config', renderK3sConfig(d, fleet));
  const registries = renderRegistries(d);
  if (registries) add('k3s/registries.yaml', 'k3s-registries', registries);

  add('secrets/ssh_host_ed25519_key', 'other', secrets.sshHostKey.privateKey, true);
  add('ssh/ssh_host_ed25519_key.pub', 'other', secrets.sshHostKey.publicKey.trim() + '\n');
  const multi = d.cluster.kind !== 'single-node';
  if (d.cluster.kind !== 'multi-node-agent') add('secrets/k3s-token', 'other', secrets.k3sToken + '\n', true);
  if (multi) {
    if (!secrets.agentToken) throw new Error(`${d.id}: a multi-node cluster member needs its agent token (an agent: its own bootstrap token; the server: its agent-token)`);
    add('secrets/k3s-agent-token', 'other', secrets.agentToken + '\n', true);
  }
  for (const u of d.users) add(`users/${u.name}.authorized_keys`, 'other', u.sshAuthorizedKeys.join('\n') + '\n');
  const sysctl = sysctlConf();
  add('system/sysctl.conf', 'other', sysctl);
  add('system/sshd.conf', 'other', sshdConf());
  add('system/modules-load.conf', 'other', modulesLoadConf());
  add('system/nftables.nft', 'other', nftablesRules(d, fleet));
  add('system/edgeforge-nftables.service', 'other', nftablesService());
  add(`system/${FIRSTBOOT.unit}`, 'other', firstbootUnit());
  add(`system/${path.posix.basename(FIRSTBOOT.command)}`, 'other', firstbootCommand(), false, 0o755);
  if (opts.fluxBootstrap && d.cluster.kind !== 'multi-node-agent') {
    for (const f of opts.fluxBootstrap(d, fleet, secrets)) {
      if (!/^[a-z0-9][a-z0-9.-]*\.yaml$/.test(f.name)) throw new Error(`flux bootstrap file name "${f.name}" must be a simple lower-case *.yaml name`);
      add(`flux/${f.name}`, 'flux-bootstrap', f.text, f.secret);
    }
  }
  // the encryption stage: its program and units; the LUKS recovery passphrase joins the one-time secrets
  let sealed = false;
  if (d.encryption.mode !== 'none' && opts.encryption) {
    if (secrets.luksRecovery) add('secrets/luks-recovery', 'other', secrets.luksRecovery + '\n', true);
    // every one-time secret: bundle/secrets/* and the Flux bootstrap's secret manifest (Git deploy key,
    // device and site SOPS keys), which unpacks as bundle/flux/NAME on the device (encryption/sh/unseal.sh)
    const oneTime = (f: RenderedFile) => f.path.startsWith('bundle/secrets/') || (f.kind === 'flux-bootstrap' && f.secret);
    const secretFiles = bundle.filter(oneTime).map((f) => ({ name: f.path.startsWith('bundle/secrets/') ? f.path.slice('bundle/secrets/'.length) : f.path.slice('bundle/'.length), bytes: f.bytes, mode: f.mode }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const r = opts.encryption(d, secretFiles);
    for (const f of r.files) {
      if (!f.path.startsWith('bundle/')) throw new Error(`encryption stage file ${f.path} must be under bundle/`);
      bundle.push({ ...f, text: Buffer.from(f.bytes).toString('utf8') });
    }
    if (r.sealed) {
      sealed = true;
      for (let i = bundle.length - 1; i >= 0; i--) if (oneTime(bundle[i])) bundle.splice(i, 1);
    }
  }
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
      hostKey: sealed ? undefined : secrets.sshHostKey,
      bundle: [...bundle, sumsFile],
      system: [
        { path: '/etc/sysctl.d/90-edgeforge-k3s.conf', text: sysctl, mode: 0o644 },
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
