// Site gateways (ssh.jumpHost): one SSH connection per gateway, shared by every device behind it; each
// device gets its own forwarded channel (ssh2 forwardOut), like `ssh -J`. The gateway's host key is pinned
// in keys/known_hosts/gateway-<host>_<port> (recorded with --trust-new-host-keys, like a device's).
import path from 'node:path';
import { Session } from './session.ts';
import { PhaseError, describe, isTransient } from './errors.ts';
import { blobType, decide, hostKeyMessage, knownHostsName, readKnownHostsFile, recordHostKey, type HostKeyDecision } from './hostkeys.ts';
import type { Credentials } from './auth.ts';

export interface JumpSpec {
  user?: string;
  host: string;
  port: number;
}

export function parseJumpHost(spec: string): JumpSpec {
  const m = /^(?:([a-z_][a-z0-9_.-]*)@)?(\[[0-9a-fA-F:.]+\]|[^@:\s[\]]+)(?::(\d{1,5}))?$/.exec(spec.trim());
  const port = m?.[3] ? Number(m[3]) : 22;
  if (!m || port < 1 || port > 65535) throw new PhaseError('connect', `ssh.jumpHost "${spec}" is not user@host[:port]`, false);
  return { user: m[1], host: m[2].replace(/^\[|\]$/g, ''), port };
}

export class GatewayPool {
  private open = new Map<string, Promise<Session>>();

  constructor(
    private readonly keysDir: string,
    private readonly trustNew: boolean,
    private readonly timeoutMs: number,
  ) {}

  knownHostsFile(j: JumpSpec): string {
    return path.join(this.keysDir, 'known_hosts', knownHostsName(`gateway-${j.host}_${j.port}`));
  }

  /** a byte stream to host:port through the gateway */
  async channel(j: JumpSpec, user: string, creds: Credentials, host: string, port: number, log: (l: string) => void): Promise<import('node:stream').Duplex> {
    const gwUser = j.user ?? user;
    const key = `${gwUser}@${j.host}:${j.port}`;
    let p = this.open.get(key);
    if (!p) {
      p = this.connect(j, gwUser, creds, log);
      this.open.set(key, p);
      // a failed or dropped gateway connection is opened again by the next device that needs it
      p.then(
        (s) => s.client.once('close', () => this.open.get(key) === p && this.open.delete(key)),
        () => this.open.get(key) === p && this.open.delete(key),
      );
    }
    let gw: Session;
    try {
      gw = await p;
    } catch (err) {
      if (err instanceof PhaseError) throw err;
      throw new PhaseError('connect', `gateway ${key}: ${describe(err)}`, isTransient(err));
    }
    return gw.forward(host, port, this.timeoutMs);
  }

  private async connect(j: JumpSpec, user: string, creds: Credentials, log: (l: string) => void): Promise<Session> {
    const file = this.knownHostsFile(j);
    const pinned = await readKnownHostsFile(file, file);
    let refusal: { d: HostKeyDecision; type: string } | undefined;
    let toRecord: Buffer | undefined;
    log(`gateway ${user}@${j.host}:${j.port}: connecting`);
    try {
      return await Session.open({
        host: j.host,
        port: j.port,
        user,
        privateKey: creds.privateKey,
        agent: creds.agent,
        timeoutMs: this.timeoutMs,
        verifyHostKey: (blob) => {
          const d = decide(blob, pinned);
          if (d.kind === 'pinned') return true;
          if (d.kind === 'unknown' && this.trustNew) {
            toRecord = blob;
            return true;
          }
          refusal = { d, type: blobType(blob) };
          return false;
        },
      });
    } catch (err) {
      if (refusal && refusal.d.kind !== 'pinned') throw new PhaseError('connect', `gateway: ${hostKeyMessage(refusal.d, `gateway ${j.host}:${j.port}`, refusal.type, file)}`, false);
      throw err;
    } finally {
      if (toRecord) {
        await recordHostKey(file, j.host, j.port, toRecord, 'edgeforge-gateway');
        log(`gateway ${j.host}:${j.port}: recorded its host key in ${file} (--trust-new-host-keys)`);
      }
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const p of all) (await p.catch(() => undefined))?.close();
  }
}
