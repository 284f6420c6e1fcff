// The one way a test (or benchmark) reaches an external program. A test that needs a tool asks for it here:
// under CI (CI set and not "false"/"0") or EDGEFORGE_REQUIRE_TOOLS=1 a missing tool FAILS the run with its name
// and Debian package; elsewhere its tests are skipped with the same message on stderr. Nothing passes because a
// tool is absent. Spawn the path `tool(name)` returns, never a bare name: test/guard/tools.test.ts checks it.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The programs the tests run, by the Debian package that installs them (what `apt-get install` needs;
 *  .ci/packages.txt lists them). */
const PROGRAMS_BY_PACKAGE: Record<string, string[]> = {
  'bmap-tools': ['bmaptool'],
  clevis: ['clevis'],
  'clevis-tpm2': ['clevis-encrypt-tpm2'],
  'cloud-init': ['cloud-init'],
  coreutils: ['truncate'],
  'cryptsetup-bin': ['cryptsetup'],
  curl: ['curl'],
  dash: ['dash'],
  dosfstools: ['fsck.vfat', 'mkfs.vfat'],
  // CNCF distribution 2.8 (the OCI transport's registry and site caches)
  'docker-registry': ['docker-registry'],
  e2fsprogs: ['debugfs', 'e2fsck', 'mke2fs', 'mkfs.ext4', 'resize2fs'],
  fdisk: ['sfdisk'],
  gdisk: ['sgdisk'],
  git: ['git'],
  'grub-common': ['grub-editenv', 'grub-script-check'],
  gnupg: ['gpg', 'gpgconf'],
  jose: ['jose'],
  mosquitto: ['mosquitto', 'mosquitto_passwd'],
  'mosquitto-clients': ['mosquitto_pub', 'mosquitto_sub'],
  mount: ['losetup', 'mount', 'umount'],
  mtools: ['mcopy', 'mdir', 'minfo', 'mlabel', 'mtype'],
  nftables: ['nft'],
  openssl: ['openssl'],
  'openssh-client': ['ssh-add', 'ssh-agent', 'ssh-keygen'],
  'openssh-server': ['sshd'],
  'openssh-sftp-server': ['sftp-server'],
  passwd: ['chpasswd', 'useradd', 'userdel'],
  'python3-yaml': ['python3'],
  rauc: ['rauc'],
  'squashfs-tools': ['mksquashfs', 'unsquashfs'],
  shellcheck: ['shellcheck'],
  socat: ['socat'],
  sudo: ['sudo'],
  swtpm: ['swtpm'],
  systemd: ['systemd-analyze', 'systemd-escape'],
  tang: ['tangd', 'tangd-keygen'],
  tar: ['tar'],
  tmux: ['tmux'],
  'tpm2-tools': ['tpm2_getrandom'],
  'util-linux': ['blkid', 'fallocate', 'unshare'],
  'xz-utils': ['xz'],
  // not a Debian package of the right vintage (Debian's kubernetes-client is 1.20): the Kubernetes apt repository
  'not in Debian: kubectl >= 1.27 from https://pkgs.k8s.io': ['kubectl'],
};

/** Programs that must be exactly this file (e.g. Debian's python3 with its python3-yaml, not one earlier on PATH). */
const FIXED_PATHS: Record<string, string> = {
  dash: '/bin/dash',
  'docker-registry': '/usr/bin/docker-registry',
  mosquitto: '/usr/sbin/mosquitto',
  python3: '/usr/bin/python3',
  'sftp-server': '/usr/lib/openssh/sftp-server',
  sshd: '/usr/sbin/sshd',
  tangd: '/usr/libexec/tangd',
  'tangd-keygen': '/usr/libexec/tangd-keygen',
};

/** Each program's Debian package, and `path` where it must be that one file. */
export const TOOLS: Record<string, { pkg: string; path?: string }> = Object.fromEntries(
  Object.entries(PROGRAMS_BY_PACKAGE).flatMap(([pkg, names]) => names.map((name) => [name, FIXED_PATHS[name] ? { pkg, path: FIXED_PATHS[name] } : { pkg }])),
);

/** Missing tools fail instead of skipping: in CI, or when asked for. */
export function toolsRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI;
  return (ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0') || env.EDGEFORGE_REQUIRE_TOOLS === '1';
}

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** Where `name` is: its fixed path, or the first on PATH (then the sbin folders a normal user's PATH may lack). */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fixed = TOOLS[name]?.path;
  if (fixed) return executable(fixed) ? fixed : undefined;
  const dirs = [...(env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.map((d) => path.join(d, name)).find(executable);
}

/** "sfdisk (Debian package fdisk), … — apt-get install fdisk …" for the names that are missing, or undefined. */
export function missingTools(names: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const missing = names.filter((n) => !findTool(n, env));
  if (missing.length === 0) return undefined;
  const unknown = missing.filter((n) => !TOOLS[n]);
  if (unknown.length) throw new Error(`scripts/testkit/tools.ts does not know the Debian package of ${unknown.join(', ')}: add it to TOOLS`);
  const pkgs = [...new Set(missing.map((n) => TOOLS[n].pkg).filter((p) => !p.includes(' ')))];
  return `${missing.map((n) => `${n} (${TOOLS[n].pkg.includes(' ') ? TOOLS[n].pkg : `Debian package ${TOOLS[n].pkg}`})`).join(', ')} not found${pkgs.length ? ` — apt-get install ${pkgs.join(' ')}` : ''}`;
}

export class MissingToolError extends Error {}

const said = new Set<string>();
/** "skipped: …" on stderr, once per reason */
function saySkipped(msg: string): void {
  if (said.has(msg)) return;
  said.add(msg);
  process.stderr.write(`skipped: ${msg}\n`);
}

/**
 * Gate for `describe.runIf(requireTools([...], 'what'))` / `it.runIf(...)`: true when every tool is present.
 * Otherwise, under CI or EDGEFORGE_REQUIRE_TOOLS=1 it throws (the test file fails, naming tool and package);
 * elsewhere it prints "skipped: …" with the same words and returns false.
 */
export function requireTools(names: string[], what = 'these tests', env: NodeJS.ProcessEnv = process.env): boolean {
  const problem = missingTools(names, env);
  if (!problem) return true;
  const msg = `${what}: ${problem}`;
  if (toolsRequired(env)) throw new MissingToolError(`${msg} (a missing tool fails under CI / EDGEFORGE_REQUIRE_TOOLS=1; outside CI these tests are skipped)`);
  saySkipped(msg);
  return false;
}

/** The path to spawn for `name`. Throws with the package when it is missing (a test that did not gate on it). */
export function tool(name: string): string {
  const p = findTool(name);
  if (!p) throw new MissingToolError(missingTools([name])!);
  return p;
}

/** Root-only cases (loop devices, creating users): true as root; otherwise prints why they are skipped. */
export function requireRoot(what: string): boolean {
  if (process.getuid?.() === 0) return true;
  saySkipped(`${what}: needs root (run the suite as root, as CI does)`);
  return false;
}

/** A spawnSync result whose exit status was 0; otherwise throws with the program's stderr (a check never passes on a failed run). */
export function succeeded<T extends { status: number | null; error?: Error; stderr: string | Buffer; signal?: NodeJS.Signals | null }>(r: T, what = 'the program'): T {
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${what} exited with ${r.status ?? r.signal}: ${String(r.stderr).trim()}`);
  return r;
}
