// A real Mosquitto on this machine for tests, the benchmarks and the ARM64 boot test: a throwaway CA and
// broker certificate made with openssl (SANs 127.0.0.1, 10.0.2.2 — the host as a qemu guest sees it —
// and localhost), the configuration `edgeforge status broker-config` writes, on a free port. Both programs are
// reached through tools.ts (a missing one names its Debian package).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { findTool, tool } from './tools.ts';

/** The broker binary, or undefined when it is not installed (Debian puts it in /usr/sbin, often not on a user's PATH). */
export function mosquittoBinary(): string | undefined {
  return findTool('mosquitto');
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync(tool('openssl'), args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

/** CA + broker certificate in `dir`: ca.pem, ca.key, broker.pem, broker.key. */
export function makeTestCerts(dir: string, sans = ['IP:127.0.0.1', 'IP:10.0.2.2', 'DNS:localhost']): { ca: string; cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=edgeforge test broker CA'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'broker.key', '-out', 'broker.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(path.join(dir, 'san.ext'), `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'broker.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'broker.pem', '-days', '30', '-extfile', 'san.ext'], dir);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'broker.pem'), key: path.join(dir, 'broker.key') };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface RunningBroker {
  port: number;
  proc: ChildProcess;
  log: () => string;
  /** reload the password and ACL files (what an operator does after `broker-config` + a revoke) */
  reload: () => Promise<void>;
  stop: () => Promise<void>;
}

/** Start `mosquitto -c conf` (a config whose listener line is already on `port`) and wait until it listens. */
export async function startBroker(conf: string, port: number, timeoutMs = 15000): Promise<RunningBroker> {
  const proc = spawn(tool('mosquitto'), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (b) => (log += b));
  proc.stderr!.on('data', (b) => (log += b));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited (${proc.exitCode}): ${log}`);
    const up = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
      s.on('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    proc,
    log: () => log,
    reload: async () => {
      const before = log.length;
      proc.kill('SIGHUP');
      for (let i = 0; i < 50 && !/Reloading config|Reloading/i.test(log.slice(before)); i++) await new Promise((r) => setTimeout(r, 100));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}
