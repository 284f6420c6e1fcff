// Real registries on this machine for tests, the benchmark and the boot test: Debian's docker-registry (CNCF
// distribution 2.8) with a configuration edgeforge wrote, on loopback, with its access log kept so a test can
// count what reached it (a site cache's upstream fetches, the bytes a central host served).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { tool } from './tools.ts';

export interface RunningRegistry {
  port: number;
  proc: ChildProcess;
  log: () => string;
  /** access-log lines (method, path, status, response bytes) of requests the registry answered */
  requests: () => { method: string; path: string; status: number; bytes: number }[];
  stop: () => Promise<void>;
}

/** Start `docker-registry serve CONFIG` and wait until it accepts connections on `port`. */
export async function startRegistry(config: string, port: number, env: NodeJS.ProcessEnv = {}, timeoutMs = 15000): Promise<RunningRegistry> {
  const proc = spawn(tool('docker-registry'), ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  proc.stdout!.on('data', (b) => (log += b));
  proc.stderr!.on('data', (b) => (log += b));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited (${proc.exitCode}): ${log}`);
    const up = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
      s.on('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`docker-registry did not listen on ${port} within ${timeoutMs} ms: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    proc,
    log: () => log,
    requests: () =>
      [...log.matchAll(/"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[0-9.]+" (\d{3}) (\d+|-)/g)].map((m) => ({
        method: m[1],
        path: m[2],
        status: Number(m[3]),
        bytes: m[4] === '-' ? 0 : Number(m[4]),
      })),
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}
