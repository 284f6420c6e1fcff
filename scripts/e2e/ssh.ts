// SSH into the guest through qemu's hostfwd with the system OpenSSH client, trusting ONLY the device's pinned
// host key (StrictHostKeyChecking=yes against a known_hosts file holding just that key): a connection that
// succeeds is itself the proof that the device serves the pinned key.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';

$.verbose = false;

export interface SshTarget {
  port: number;
  user: string;
  identity: string;
  /** the device's pinned public host key ("ssh-ed25519 AAAA…") */
  hostKey: string;
  alias: string;
  workDir: string;
}

async function knownHosts(t: SshTarget): Promise<string> {
  const f = path.join(t.workDir, `known_hosts.${t.alias}`);
  await fs.writeFile(f, `${t.alias} ${t.hostKey.trim().split(/\s+/).slice(0, 2).join(' ')}\n`);
  return f;
}

// the client could not get a session, so the command never ran: safe to try again (a busy guest under emulation
// is slow to answer the banner); "closed by remote host" is not here (the command may have run)
const NOT_CONNECTED = /during banner exchange|kex_exchange_identification|connect to host \S+ port \d+: (Connection refused|Connection timed out)/;

/** Runs `command` on the guest; a connection that failed before the command ran is tried again (3 times, 5 s apart). */
export async function sshRun(t: SshTarget, command: string, timeoutSec = 60, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const kh = await knownHosts(t);
  for (let attempt = 1; ; attempt++) {
    const r = await $({
      input: input ?? '',
    })`timeout ${timeoutSec} ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i ${t.identity} -o UserKnownHostsFile=${kh} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o HostKeyAlias=${t.alias} -o ConnectTimeout=15 -o ServerAliveInterval=10 -o LogLevel=ERROR -p ${t.port} ${`${t.user}@127.0.0.1`} ${command}`.nothrow();
    const out = { code: r.exitCode ?? 255, stdout: r.stdout, stderr: r.stderr };
    if (out.code !== 255 || !NOT_CONNECTED.test(out.stderr) || attempt >= 3) return out;
    await new Promise((res) => setTimeout(res, 5000));
  }
}

/** retries until sshd answers (it may still be restarting with the pinned key) */
export async function sshWait(t: SshTarget, totalSec: number): Promise<{ ok: boolean; lastError: string }> {
  const end = Date.now() + totalSec * 1000;
  let lastError = '';
  while (Date.now() < end) {
    const r = await sshRun(t, 'true', 40);
    if (r.code === 0) return { ok: true, lastError: '' };
    lastError = r.stderr.trim() || `exit ${r.code}`;
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(lastError)) return { ok: false, lastError };
    await new Promise((r2) => setTimeout(r2, 5000));
  }
  return { ok: false, lastError };
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}
