// Test fixtures for disk encryption: a real tang server on loopback (tangd behind socat, as without
// systemd), a software TPM (swtpm), shell runners, and an example device pointed at the test tang.
import { succeeded, tool } from '../../scripts/testkit/tools.ts';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';
import { layoutShellHeader } from '../../scripts/device/layout.ts';
import { shellCore } from '../../scripts/render/shell/program.ts';
import { ENCRYPTION_SH, shSource } from '../../scripts/render/encryption/compose.ts';

export function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `edgeforge-enc-${prefix}-`));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A tang server: keys made by tangd-keygen, served by tangd behind socat on 127.0.0.1:port. */
export class TangServer {
  readonly db: string;
  port = 0;
  private proc?: ChildProcess;
  constructor(dir: string) {
    this.db = path.join(dir, 'tang-db');
    mkdirSync(this.db, { recursive: true });
    const r = spawnSync(tool('tangd-keygen'), [this.db], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tangd-keygen failed: ${r.stderr}`);
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  /** the signing key's S256 thumbprint, as `tang-show-keys` prints it */
  get thumbprint(): string {
    const sig = readdirSync(this.db).find((f) => f.endsWith('.jwk') && JSON.parse(readFileSync(path.join(this.db, f), 'utf8')).alg === 'ES512');
    if (!sig) throw new Error('no signing key in the tang db');
    return succeeded(spawnSync(tool('jose'), ['jwk', 'thp', '-i', path.join(this.db, sig), '-a', 'S256'], { encoding: 'utf8' }), 'jose jwk thp').stdout.trim();
  }
  /** the server's private exchange key (alg ECMR), for independent checks */
  get exchangeKey(): { d: string; x: string; y: string; crv: string } {
    const f = readdirSync(this.db).find((n) => n.endsWith('.jwk') && JSON.parse(readFileSync(path.join(this.db, n), 'utf8')).alg === 'ECMR');
    return JSON.parse(readFileSync(path.join(this.db, f!), 'utf8'));
  }
  async start(port?: number): Promise<void> {
    this.port = port ?? this.port ?? 0;
    if (!this.port) this.port = await freePort();
    this.proc = spawn(tool('socat'), [`TCP-LISTEN:${this.port},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${tool('tangd')} ${this.db}`], { stdio: 'ignore' });
    await waitFor(() => spawnSync(tool('curl'), ['-sf', '-o', '/dev/null', `${this.url}/adv`]).status === 0, `tang on ${this.url}`);
  }
  advertisement(): string {
    const r = spawnSync(tool('curl'), ['-sf', `${this.url}/adv`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error('cannot fetch the advertisement');
    return r.stdout;
  }
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
    await waitFor(() => spawnSync(tool('curl'), ['-sf', '-o', '/dev/null', '--max-time', '1', `${this.url}/adv`]).status !== 0, 'tang to stop');
  }
}

/** A software TPM 2.0 (swtpm, TCP) that tpm2-tools and clevis reach through TPM2TOOLS_TCTI. */
export class SoftTpm {
  private proc?: ChildProcess;
  port = 0;
  constructor(private readonly dir: string) {}
  get tcti(): string {
    return `swtpm:host=127.0.0.1,port=${this.port}`;
  }
  async start(): Promise<void> {
    const state = path.join(this.dir, 'swtpm');
    mkdirSync(state, { recursive: true });
    // the swtpm TCTI finds the control channel at port + 1
    do this.port = await freePort();
    while (!(await portFree(this.port + 1)));
    const ctrl = this.port + 1;
    this.proc = spawn(
      tool('swtpm'),
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${state}`,
        '--server',
        `type=tcp,port=${this.port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: 'ignore' },
    );
    await waitFor(() => spawnSync(tool('tpm2_getrandom'), ['-T', this.tcti, '8'], { stdio: 'ignore' }).status === 0, 'swtpm', 15_000);
  }
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}

export interface ShResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Run a POSIX shell script with dash (the device's /bin/sh on Debian/Ubuntu/Raspberry Pi OS).
 * Asynchronous: argon2 at the real cost takes seconds, and a blocked event loop stalls vitest's worker.
 */
export function sh(script: string, env: Record<string, string> = {}, input?: string | Buffer): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('dash', ['-c', script], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    p.on('error', reject);
    p.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

/** Write rendered bundle files under ROOT/var/lib/edgeforge/ (bundle/... paths). */
export function writeBundle(root: string, files: RenderedFile[]): string {
  const bundle = path.join(root, 'var/lib/edgeforge/bundle');
  for (const f of files) {
    if (!f.path.startsWith('bundle/')) continue;
    const p = path.join(bundle, f.path.slice('bundle/'.length));
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, f.bytes);
    chmodSync(p, f.mode);
  }
  return bundle;
}

/** An example-fleet device whose tang servers are the given test servers. */
export function withTang(d: ResolvedDevice, servers: TangServer[], mode?: ResolvedDevice['encryption']['mode'], threshold?: number): ResolvedDevice {
  const c = structuredClone(d);
  c.encryption = {
    mode: mode ?? c.encryption.mode,
    tang: servers.map((s) => ({ url: s.url, thumbprint: s.thumbprint })),
    threshold: threshold ?? c.encryption.threshold,
  };
  return c;
}

/** luksDump fields the tests check */
export function luksDump(file: string): string {
  const r = spawnSync(tool('cryptsetup'), ['luksDump', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`luksDump ${file}: ${r.stderr}`);
  return r.stdout;
}

/** The wrapper the first-boot program runs system commands through (EDGEFORGE_SYS): real commands pass
 * through; those needing device-mapper or a running systemd are logged, and `clevis luks unlock` is checked
 * the way it can be here (clevis luks pass | cryptsetup --test-passphrase). Every call is logged. */
export function sysWrapper(dir: string): { path: string; calls: string } {
  const p = path.join(dir, 'sys-wrapper.sh');
  const calls = path.join(dir, 'sys-calls.log');
  writeFileSync(
    p,
    `#!/bin/sh
printf '%s\\n' "$*" >>'${calls}'
case $1 in
  mkfs.ext4|mount|systemctl|partx|udevadm) exit 0 ;;
  clevis)
    if [ "$2 $3" = "luks unlock" ]; then
      # clevis luks unlock -d DEV -n NAME: no device-mapper here; prove the clevis slot opens instead
      for s in $(clevis luks list -d "$5" | sed -n 's/^\\([0-9]*\\):.*/\\1/p'); do
        clevis luks pass -d "$5" -s "$s" | cryptsetup open --test-passphrase --key-slot "$s" --key-file - "$5" && exit 0
      done
      exit 1
    fi ;;
esac
exec "$@"
`,
    { mode: 0o755 },
  );
  return { path: p, calls };
}

const SH_DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../scripts/render');
/** the shell core every device program includes */
export const SHELL_CORE = path.join(SH_DIR, 'shell/core.sh');

/**
 * The start of a script that sources the encryption functions without a plan (the partition helpers need
 * none): the device layout's variables, generated as the programs get them, a step name, then the shell core.
 */
export function functionsPrelude(): string {
  return [...layoutShellHeader(shellCore(), ...ENCRYPTION_SH.map(shSource)), 'STEP=encrypt_data_volume', `. ${SHELL_CORE}`].join('\n');
}
