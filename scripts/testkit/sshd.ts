// A fleet of real OpenSSH sshd endpoints on loopback, for provision tests and the SSH benchmark.
// One sshd per endpoint (its own port, host key, authorized_keys and device root), like one device each:
// sshd cannot give different ports of one daemon different host keys. Each endpoint's sessions get
// EDGEFORGE_ROOT=<its root dir> (sshd_config SetEnv), so the first-boot program's file effects land in that
// directory, and EDGEFORGE_ARCH=aarch64 (the devices the bundle is for). Started and stopped here with
// `sshd -D -e -f config`; the system's sshd service is never used.
// As root (CI), sessions are root. As a normal user, sshd runs as that user on its high port (no privilege
// separation, StrictModes off) and every session and SFTP server runs as root of its own user namespace
// (`unshare -r`, via ForceCommand): `id -u` says 0 on the "device" and files are still the user's here.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, chmodSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generateSshKeyPair } from '../keys/ssh.ts';
import { tool } from './tools.ts';

const asRoot = () => process.getuid?.() === 0;

/** The programs an endpoint runs: gate a suite on them with requireTools(SSHD_TOOLS, '…'). */
export const SSHD_TOOLS = asRoot() ? ['sshd', 'sftp-server'] : ['sshd', 'sftp-server', 'unshare'];

/** The user to log in as: root, or (sshd running as a normal user accepts only that user) the user running the tests. */
export function loginUser(): string {
  return asRoot() ? 'root' : os.userInfo().username;
}

// ports handed out by this process: two endpoints on one port would quietly be one device (host-key pinning
// then refuses, rightly, but the test would be wrong)
const handedOut = new Set<number>();

// Below the kernel's ephemeral range (32768+ here): the harness's own outgoing connections and other
// programs' cannot take an endpoint's port between choosing it and sshd binding it.
let nextPort = 12000 + Math.floor(Math.random() * 8000);

export async function freePort(): Promise<number> {
  for (;;) {
    const port = nextPort++;
    if (nextPort > 32000) nextPort = 10000;
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
}

async function waitForPort(port: number, ms: number, proc?: ChildProcess, stderr?: () => string): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`sshd on port ${port} exited (${proc.exitCode}): ${stderr?.() ?? ''}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`sshd on port ${port} did not start: ${stderr?.() ?? ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** pids of every descendant of `pid` (walking /proc), deepest last */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

export interface EndpointOptions {
  /** sshd_config lines added at the end */
  extraConfig?: string[];
  /** environment the sessions get besides EDGEFORGE_ROOT/ARCH */
  env?: Record<string, string>;
  /** create <root>/sys/module/wireguard (the kernel module check) — default true */
  wireguard?: boolean;
  logLevel?: string;
  /**
   * sshd -r: fork per connection without re-executing sshd (no dynamic linking per connection). For the
   * benchmark, where a thousand "devices" share the provisioning machine's two cores: a real device pays its
   * own sshd's cost on its own CPU.
   */
  noReexec?: boolean;
  /** the in-process SFTP server (Subsystem sftp internal-sftp): no shell and sftp-server exec per upload */
  internalSftp?: boolean;
  /** extra arguments of the SFTP server, e.g. `-P statvfs,fstatvfs` (a server that refuses those requests) */
  sftpArgs?: string;
  /** no `Subsystem sftp` line: an sshd without SFTP (provision's permanent failure) */
  noSftp?: boolean;
}

export class Endpoint {
  proc?: ChildProcess;
  stderr = '';
  readonly root: string;
  readonly hostKeyPublic: string;
  readonly config: string;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    authorizedKeys: string,
    private readonly opts: EndpointOptions = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.root = path.join(dir, 'root');
    for (const d of ['var/tmp', 'var/lib', 'etc']) mkdirSync(path.join(this.root, d), { recursive: true });
    chmodSync(path.join(this.root, 'var/tmp'), 0o1777);
    if (opts.wireguard !== false) mkdirSync(path.join(this.root, 'sys/module/wireguard'), { recursive: true });
    const hk = generateSshKeyPair(`root@${name}`);
    writeFileSync(path.join(dir, 'ssh_host_ed25519_key'), hk.privateKey, { mode: 0o600 });
    this.hostKeyPublic = hk.publicKey;
    writeFileSync(path.join(dir, 'authorized_keys'), authorizedKeys, { mode: 0o644 });
    // HOME: bash started by sshd sources $HOME/.bashrc even for `bash -c`; a device has a plain one, the test
    // machine's root may not (pyenv and friends take seconds) — so sessions get an empty home of their own
    mkdirSync(path.join(dir, 'home'), { recursive: true });
    const env = { HOME: path.join(dir, 'home'), EDGEFORGE_ROOT: this.root, EDGEFORGE_ARCH: 'aarch64', ...(opts.env ?? {}) };
    this.config = path.join(dir, 'sshd_config');
    const sftp = `${opts.internalSftp && asRoot() ? 'internal-sftp' : tool('sftp-server')}${opts.sftpArgs ? ` ${opts.sftpArgs}` : ''}`;
    const userns: string[] = [];
    if (!asRoot()) {
      // root of a user namespace for every session: the client's command, or the SFTP server
      const session = path.join(dir, 'session.sh');
      const unshare = tool('unshare');
      writeFileSync(
        session,
        [
          '#!/bin/sh',
          `case "$SSH_ORIGINAL_COMMAND" in`,
          `  '') exec ${unshare} -r /bin/sh -l ;;`,
          `  ${tool('sftp-server')}*) exec ${unshare} -r $SSH_ORIGINAL_COMMAND ;;`,
          'esac',
          `exec ${unshare} -r /bin/sh -c "$SSH_ORIGINAL_COMMAND"`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      userns.push(`ForceCommand ${session}`);
    }
    writeFileSync(
      this.config,
      [
        // sshd keeps the first value of a keyword: a test's own settings go first
        ...(opts.extraConfig ?? []),
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(dir, 'ssh_host_ed25519_key')}`,
        'PidFile none',
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'AllowTcpForwarding no',
        'MaxStartups 200:30:400',
        'UseDNS no',
        `LogLevel ${opts.logLevel ?? 'ERROR'}`,
        ...(opts.noSftp ? [] : [`Subsystem sftp ${sftp}`]),
        ...userns,
        `SetEnv ${Object.entries(env)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
        '',
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    // privilege separation (root only) needs its empty directory (the system's sshd service creates it at boot)
    if (asRoot()) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    this.stderr = '';
    const p = spawn(tool('sshd'), ['-D', '-e', ...(this.opts.noReexec ? ['-r'] : []), '-f', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += d.toString();
    });
    this.proc = p;
    await waitForPort(this.port, 10_000, p, () => this.stderr);
    // someone else may hold the port (sshd then exits with "Cannot bind"): that must not pass for this device
    await new Promise((r) => setTimeout(r, 50));
    if (p.exitCode !== null) throw new Error(`sshd for ${this.name} exited (${p.exitCode}): ${this.stderr}`);
  }

  /** the device dies: its sshd and every session under it (SIGKILL), like pulling the power */
  kill(): void {
    const p = this.proc;
    if (!p?.pid || p.exitCode !== null) return;
    const all = [p.pid, ...descendants(p.pid)];
    for (const pid of all) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    this.proc = undefined;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    const exited = new Promise((r) => p.once('exit', r));
    this.kill();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }

  /** a file under the device root */
  file(rel: string): string {
    return path.join(this.root, rel);
  }
}

/** A TCP relay that delays every chunk, in order (a slow link); or drops everything (`stall`). */
export class SlowProxy {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  constructor(
    readonly port: number,
    readonly target: number,
    public delayMs: number,
  ) {}

  start(): Promise<void> {
    this.server = net.createServer((client) => {
      const up = net.connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(up);
      const relay = (from: net.Socket, to: net.Socket) => {
        let chain = Promise.resolve();
        from.on('data', (d) => {
          chain = chain.then(() => new Promise<void>((r) => setTimeout(() => (to.destroyed || to.write(d), r()), this.delayMs)));
        });
        from.on('close', () => chain.then(() => to.destroy()));
        from.on('error', () => {});
      };
      relay(client, up);
      relay(up, client);
    });
    return new Promise((resolve) => this.server!.listen(this.port, '127.0.0.1', () => resolve()));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r) ?? r(undefined));
  }
}

export interface Fleetlet {
  dir: string;
  clientKey: string;
  clientPublic: string;
  endpoints: Endpoint[];
  stop(): Promise<void>;
}

/** A client key pair and `n` endpoints that authorize it. Call stop() (afterAll) to kill every sshd. */
export async function startEndpoints(n: number, opts: EndpointOptions & { names?: string[]; dir?: string } = {}): Promise<Fleetlet> {
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'edgeforge-sshd-')));
  mkdirSync(dir, { recursive: true });
  const ck = generateSshKeyPair('edgeforge-test-client');
  const clientKey = path.join(dir, 'client_ed25519');
  writeFileSync(clientKey, ck.privateKey, { mode: 0o600 });
  writeFileSync(clientKey + '.pub', ck.publicKey + '\n');
  const endpoints: Endpoint[] = [];
  for (let i = 0; i < n; i++) {
    const name = opts.names?.[i] ?? `dev-${String(i + 1).padStart(4, '0')}`;
    endpoints.push(new Endpoint(name, path.join(dir, name), await freePort(), ck.publicKey + '\n', opts));
  }
  // start in small batches: 2 cores, and every sshd reads its config and key at start
  try {
    for (let i = 0; i < endpoints.length; i += 32) await Promise.all(endpoints.slice(i, i + 32).map((e) => e.start()));
  } catch (err) {
    for (const e of endpoints) e.kill();
    throw err;
  }
  return {
    dir,
    clientKey,
    clientPublic: ck.publicKey,
    endpoints,
    async stop() {
      await Promise.all(endpoints.map((e) => e.stop()));
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A system user with a password and password-only sudo, for the sudo-with-password path. Removed by the returned function. */
export function createSudoUser(name: string, password: string): () => void {
  execFileSync(tool('useradd'), ['-M', '-d', '/nonexistent', '-s', '/bin/sh', name]);
  execFileSync(tool('chpasswd'), [], { input: `${name}:${password}\n` });
  const drop = `/etc/sudoers.d/${name}`;
  writeFileSync(drop, `${name} ALL=(ALL:ALL) ALL\n`, { mode: 0o440 });
  return () => {
    try {
      rmSync(drop, { force: true });
      execFileSync(tool('userdel'), [name]);
    } catch {
      /* best effort */
    }
  };
}
