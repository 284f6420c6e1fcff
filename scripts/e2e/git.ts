// A Git-over-SSH stand-in for the fleet repository: the host's OpenSSH sshd on a loopback port (qemu forwards
// the guest's 10.0.2.101:22 to it), user `git`, one bare repository with a commit on main. The device's
// deploy key is the only key it accepts, with a forced `git-upload-pack` (read-only, as Flux uses it), so
// a ref advertisement seen from the guest proves: the network path, the pinned host key (the guest's ssh
// checks it against the known_hosts the build put in the Flux secret) and the deploy key.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { freePort } from './ssh.ts';

$.verbose = false;

export interface GitServer {
  port: number;
  /** "ssh-ed25519 AAAA…" of the stand-in, to pin in the inventory's gitops.knownHosts */
  hostKey: string;
  repo: string;
  /** the commit main points at */
  head: string;
  /** allow this public key (the device's deploy key) */
  authorize(publicKey: string): Promise<void>;
  /** sshd's log: "Accepted publickey for git … ED25519 SHA256:…" lines */
  log(): string;
  close(): Promise<void>;
}

/**
 * The system user the stand-in serves as (created when missing: the e2e test runs as root). Its password
 * field must not be "!" (locked): sshd without PAM refuses locked accounts even for public keys.
 */
async function ensureGitUser(): Promise<void> {
  if ((await $`id -u git`.nothrow()).exitCode !== 0) {
    const shell = (await fs.access('/usr/bin/git-shell').then(
      () => true,
      () => false,
    ))
      ? '/usr/bin/git-shell'
      : '/bin/sh';
    await $`useradd --system --no-create-home --home-dir /nonexistent --shell ${shell} git`;
  }
  const shadow = (await $`getent shadow git`.nothrow()).stdout.split(':')[1] ?? '';
  if (shadow.startsWith('!')) await $`usermod -p ${'*'} git`;
}

/** the bare fleet repository the device clones, with one commit, owned by the git user */
async function seedRepository(dir: string): Promise<{ repo: string; head: string }> {
  const repo = path.join(dir, 'fleet.git');
  const work = path.join(dir, 'seed-tree');
  await fs.rm(repo, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
  await $`git init -q --bare -b main ${repo}`;
  await fs.mkdir(path.join(work, 'clusters'), { recursive: true });
  await fs.writeFile(path.join(work, 'clusters/README.md'), '# fleet repository stand-in (edgeforge e2e)\n');
  const g = ['-c', 'user.name=edgeforge e2e', '-c', 'user.email=e2e@edgeforge.invalid', '-C', work];
  await $`git init -q -b main ${work}`;
  await $`git ${g} add -A`;
  await $`git ${g} commit -q -m ${'fleet stand-in'}`;
  await $`git -C ${work} push -q ${repo} main`;
  const head = (await $`git -C ${work} rev-parse main`).stdout.trim();
  await $`chown -R git: ${repo}`;
  return { repo, head };
}

export async function startGit(dir: string): Promise<GitServer> {
  await ensureGitUser();
  await fs.mkdir(dir, { recursive: true });
  // the git user must reach the repository: every directory on the way is traversable
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) await fs.chmod(d, ((await fs.stat(d)).mode & 0o7777) | 0o011).catch(() => {});
  const { repo, head } = await seedRepository(dir);

  const hostKeyFile = path.join(dir, 'ssh_host_ed25519_key');
  await fs.rm(hostKeyFile, { force: true });
  await $`ssh-keygen -q -t ed25519 -N ${''} -C git-standin -f ${hostKeyFile}`;
  const hostKey = (await fs.readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const authorized = path.join(dir, 'authorized_keys');
  await fs.writeFile(authorized, '', { mode: 0o644 });
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await fs.writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyFile}`,
      'PidFile none',
      `AuthorizedKeysFile ${authorized}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowUsers git',
      'DisableForwarding yes',
      'UseDNS no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  let log = '';
  const proc: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.on('data', (d: Buffer) => {
    if (log.length < 1 << 20) log += d.toString();
  });
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      import('node:net').then((net) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
      });
    });
    if (ok) break;
    if (proc.exitCode !== null || i > 50) throw new Error(`git stand-in sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    hostKey,
    repo,
    head,
    async authorize(publicKey) {
      const key = publicKey.trim().split(/\s+/).slice(0, 2).join(' ');
      // whatever the client asks for, it gets a read-only upload-pack of the one repository
      await fs.appendFile(authorized, `restrict,command="git-upload-pack '${repo}'" ${key} edgeforge-device-deploy-key\n`);
    },
    log: () => log,
    close: async () => {
      proc.kill();
      await new Promise((r) => setTimeout(r, 100));
    },
  };
}
