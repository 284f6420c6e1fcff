// What the stages of the ARM64 boot test (run.ts) share: the check names, the build's paths, the one run's state
// that stages hand on to the next (the servers on the host, the build, what boot 1 saw live), and `edgeforge`.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import type { BaseImageInfo } from '../../scripts/e2e/base-image.ts';
import type { Checks } from '../../scripts/e2e/checks.ts';
import { REPO } from '../../scripts/e2e/fleet.ts';
import { k3sAirgapReleaseDir } from '../../scripts/device/layout.ts';
import type { TangServer } from '../../scripts/e2e/tang.ts';
import type { E2eStatus } from '../../scripts/e2e/status.ts';
import type { GitServer } from '../../scripts/e2e/git.ts';
import type { E2eOci } from '../../scripts/e2e/oci.ts';
import type { OsReleases } from '../../scripts/e2e/os-update.ts';
import type { OsSource } from '../../scripts/e2e/os-source.ts';

$.verbose = false;

const EDGEFORGE = path.join(REPO, 'scripts/bin/edgeforge.mjs');
export const BOOT_TIMEOUT = Number(process.env.EDGEFORGE_E2E_BOOT_TIMEOUT ?? 1200) * 1000;
const EPOCH = '1767225600';
// a K3s rollout is in progress in the test fleet and the device's site is a canary site (scripts/e2e/fleet.ts):
// the device installs this release from k3s.install.canary's files, in their directory on the K3s partition
export const CANARY_VERSION = 'v1.36.5+k3s1';
export const CANARY_BUNDLE = 'bundles/k3s-canary';
export const CANARY_DIR = k3sAirgapReleaseDir(CANARY_VERSION);
/** the device's card, materialized, is written to a card this much larger (the data volume takes the rest) */
export const CARD_EXTRA = 3 * 2 ** 30;

export const C = {
  build: 'build: fleet built against the base image (disk delta)',
  materialize: 'image: device image materialized',
  seedPart: 'image: CIDATA seed partition in the gap (uefi-gpt profile)',
  airgapPart: 'image: K3s airgap partition (edgeforge-k3s, FAT) from the fleet base',
  boot1: 'boot 1: kernel boots the device image',
  cloudInit: "boot 1: cloud-init ran the device's seed",
  firstboot: 'boot 1: first-boot program completed every step',
  ssh: 'boot 1: SSH login with the pinned host key only',
  poweroff1: 'boot 1: clean power-off',
  hostname: 'device: hostname is the device id',
  users: "device: users and authorized keys are the inventory's, passwords locked",
  hostKeys: 'device: SSH host key is the pinned one (and the only one)',
  luks: 'data volume: LUKS2 volume with a tang (clevis) binding exists',
  unlocked: 'data volume: open on boot 1 (tang reachable)',
  k3sConfig: 'k3s: config.yaml where K3s reads it',
  k3sAirgap: 'k3s: installed through the airgap path and started (stand-in binary)',
  k3sRing: "k3s (day 2): a canary-ring device installed its ring's release (k3s.canaryVersion) from its directory on the K3s partition",
  flux: "flux: bootstrap manifests in K3s's auto-deploy directory",
  git: 'flux: from the device, its deploy key and pinned known_hosts reach the Git server over SSH',
  seedErased: 'secrets: gone from the seed partition',
  cacheErased: "secrets: gone from cloud-init's caches and the bundle",
  reboot: 'boot 2 (tang): device comes up again, SSH with the pinned key',
  bootUnlock: 'boot 2 (tang): data volume unlocked at boot through tang, bind mounts on it',
  poweroffReboot: 'boot 2 (tang): clean power-off',
  boot2: 'boot 3 (no tang): device comes up, SSH with the pinned key',
  locked: 'boot 3 (no tang): data volume stays locked, K3s waits (degraded mode)',
  lateUnlock: 'boot 3 (tang back): the volume unlocks by itself, the bind mounts follow, K3s starts',
  poweroff2: 'boot 3 (no tang): clean power-off',
};

export interface Built {
  out: string;
  dir: string; // OUT/devices/<id>
  image: string;
  manifest: { devices: { id: string; artifacts: { kind: string; path: string; secret: boolean }[] }[] };
}

/** One run of the boot test: set up by main(), filled in by the stages in order. */
export interface Run {
  checks: Checks;
  work: string;
  base: BaseImageInfo;
  /** the OS releases' bundles, made in the background from the start (scripts/e2e/os-update.ts) */
  osReleases: Promise<OsReleases | undefined>;
  tangDir: string;
  edgeLog: string;
  fleetDir: string;
  sshKey: string;
  tang?: TangServer;
  git?: GitServer;
  deployKeyPub: string;
  fluxSecretsOnDevice: string;
  built?: Built;
  status?: E2eStatus;
  oci?: E2eOci;
  day2Published?: string;
  fluxPins: { image: string; file: string }[];
  osRel?: OsReleases;
  osSource?: OsSource;
}

export async function edgeforge(args: string[], logFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await $({ env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH }, cwd: REPO })`node ${EDGEFORGE} ${args}`.nothrow();
  await fs.appendFile(logFile, `$ edgeforge ${args.join(' ')}\n${r.stdout}\n${r.stderr}\nexit ${r.exitCode}\n\n`);
  return { code: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}
