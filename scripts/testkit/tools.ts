// The one way a test (or benchmark) reaches an external program. A test that needs a tool asks for it here:
// under CI (CI set and not "false"/"0") or EDGEFORGE_REQUIRE_TOOLS=1 a missing tool FAILS the run with its name
// and Debian package; elsewhere its tests are skipped with the same message on stderr. Nothing passes because a
// tool is absent. Spawn the path `tool(name)` returns, never a bare name: test/guard/tools.test.ts checks it.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The Debian package of each program the tests run (what `apt-get install` needs; .ci/packages.txt lists them).
 *  `path`: the program must be that one (e.g. Debian's python3 with its python3-yaml, not one earlier on PATH). */
export const TOOLS: Record<string, { pkg: string; path?: string }> = {
  bmaptool: { pkg: 'bmap-tools' },
  blkid: { pkg: 'util-linux' },
  chpasswd: { pkg: 'passwd' },
  clevis: { pkg: 'clevis' },
  'clevis-encrypt-tpm2': { pkg: 'clevis-tpm2' },
  'cloud-init': { pkg: 'cloud-init' },
  cryptsetup: { pkg: 'cryptsetup-bin' },
  curl: { pkg: 'curl' },
  'fsck.vfat': { pkg: 'dosfstools' },
  git: { pkg: 'git' },
  gpg: { pkg: 'gnupg' },
  gpgconf: { pkg: 'gnupg' },
  jose: { pkg: 'jose' },
  // not a Debian package of the right vintage (Debian's kubernetes-client is 1.20): the Kubernetes apt repository
  kubectl: { pkg: 'not in Debian: kubectl >= 1.27 from https://pkgs.k8s.io' },
  losetup: { pkg: 'mount' },
  mcopy: { pkg: 'mtools' },
  minfo: { pkg: 'mtools' },
  mdir: { pkg: 'mtools' },
  e2fsck: { pkg: 'e2fsprogs' },
  mke2fs: { pkg: 'e2fsprogs' },
  'mkfs.ext4': { pkg: 'e2fsprogs' },
  'mkfs.vfat': { pkg: 'dosfstools' },
  mlabel: { pkg: 'mtools' },
  mtype: { pkg: 'mtools' },
  mount: { pkg: 'mount' },
  mosquitto: { pkg: 'mosquitto', path: '/usr/sbin/mosquitto' },
  mosquitto_passwd: { pkg: 'mosquitto' },
  mosquitto_pub: { pkg: 'mosquitto-clients' },
  mosquitto_sub: { pkg: 'mosquitto-clients' },
  nft: { pkg: 'nftables' },
  openssl: { pkg: 'openssl' },
  python3: { pkg: 'python3-yaml', path: '/usr/bin/python3' },
  sfdisk: { pkg: 'fdisk' },
  'sftp-server': { pkg: 'openssh-sftp-server', path: '/usr/lib/openssh/sftp-server' },
  sgdisk: { pkg: 'gdisk' },
  shellcheck: { pkg: 'shellcheck' },
  socat: { pkg: 'socat' },
  'ssh-add': { pkg: 'openssh-client' },
  'ssh-agent': { pkg: 'openssh-client' },
  'ssh-keygen': { pkg: 'openssh-client' },
  sshd: { pkg: 'openssh-server', path: '/usr/sbin/sshd' },
  sudo: { pkg: 'sudo' },
  swtpm: { pkg: 'swtpm' },
  'systemd-analyze': { pkg: 'systemd' },
  'systemd-escape': { pkg: 'systemd' },
  dash: { pkg: 'dash', path: '/bin/dash' },
  tangd: { pkg: 'tang', path: '/usr/libexec/tangd' },
  'tangd-keygen': { pkg: 'tang', path: '/usr/libexec/tangd-keygen' },
  tmux: { pkg: 'tmux' },
  'tpm2_getrandom': { pkg: 'tpm2-tools' },
  truncate: { pkg: 'coreutils' },
  umount: { pkg: 'mount' },
  unshare: { pkg: 'util-linux' },
  useradd: { pkg: 'passwd' },
  userdel: { pkg: 'passwd' },
  xz: { pkg: 'xz-utils' },
};

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
