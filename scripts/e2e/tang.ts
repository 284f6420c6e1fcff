// A real tang server on the host for the guest: keys made by tangd-keygen, each TCP connection handed to
// `tangd JWKDIR` on stdin/stdout (how systemd's tangd.socket runs it, Accept=yes). Every request line is
// recorded, so the test can tell a binding (GET /adv) from an unlock (POST /rec/...).
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { $ } from 'zx';

$.verbose = false;

const TANGD = ['/usr/libexec/tangd', '/usr/lib/x86_64-linux-gnu/tangd', '/usr/lib/tangd'];

export interface TangServer {
  port: number;
  jwkDir: string;
  /** base64url sha256 thumbprint of the signing key (what the inventory pins) */
  thumbprint: string;
  /** request lines seen ("GET /adv", "POST /rec/<kid>"), in order */
  requests: string[];
  close(): Promise<void>;
}

async function findTangd(): Promise<string> {
  for (const p of TANGD)
    if (
      await fs.access(p).then(
        () => true,
        () => false,
      )
    )
      return p;
  throw new Error('tangd not found (apt-get install tang; it is in .ci/packages.txt)');
}

export async function makeTangKeys(jwkDir: string): Promise<string> {
  await fs.mkdir(jwkDir, { recursive: true });
  if ((await fs.readdir(jwkDir)).filter((f) => f.endsWith('.jwk')).length === 0) {
    const keygen = path.join(path.dirname(await findTangd()), 'tangd-keygen');
    await $`${keygen} ${jwkDir}`;
  }
  for (const f of (await fs.readdir(jwkDir)).filter((n) => n.endsWith('.jwk') && !n.startsWith('.'))) {
    const jwk = JSON.parse(await fs.readFile(path.join(jwkDir, f), 'utf8'));
    if ((jwk.key_ops ?? []).includes('verify')) return (await $`jose jwk thp -i ${path.join(jwkDir, f)} -a S256`).stdout.trim();
  }
  throw new Error(`no signing key in ${jwkDir}`);
}

export async function startTang(jwkDir: string, port = 0): Promise<TangServer> {
  const tangd = await findTangd();
  const thumbprint = await makeTangKeys(jwkDir);
  const requests: string[] = [];
  const server = net.createServer((sock) => {
    const child = spawn(tangd, [jwkDir], { stdio: ['pipe', 'pipe', 'ignore'] });
    let head = '';
    sock.on('data', (d) => {
      if (head.length < 200 && !head.includes('\n')) {
        head += d.toString('latin1');
        const line = head.split('\r\n')[0].split('\n')[0];
        if (head.includes('\n')) requests.push(line.replace(/\s+HTTP\/\S+$/, ''));
      }
    });
    sock.pipe(child.stdin!);
    child.stdout!.pipe(sock);
    const end = () => {
      sock.destroy();
      child.kill();
    };
    sock.on('error', end);
    child.on('exit', () => sock.end());
    child.stdin!.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    jwkDir,
    thumbprint,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** the server's advertisement, as a client fetches it (for sealing offline, inventory's tang.advertisement) */
export async function fetchAdv(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/adv`);
  if (!r.ok) throw new Error(`tang /adv answered ${r.status}`);
  return r.text();
}
