// Phase connect: open SSH to the device (through its site gateway when it has one) and check its host key
// against the pins before anything is sent. A refusal names both fingerprints and is never retried.
import path from 'node:path';
import { Session } from '../session.ts';
import { PhaseError, describe, isTransient } from '../errors.ts';
import { credentialsFor } from '../auth.ts';
import { parseJumpHost } from '../gateway.ts';
import { blobType, decide, generatedHostKey, hostKeyMessage, knownHostsName, parseKeyLine, readKnownHostsFile, recordHostKey, type HostKeyDecision, type PinnedKey } from '../hostkeys.ts';
import type { DeviceRun } from '../context.ts';

export function deviceKnownHostsFile(keysDir: string, id: string): string {
  return path.join(keysDir, 'known_hosts', knownHostsName(id));
}

export async function connect(run: DeviceRun): Promise<void> {
  const d = run.device;
  const ssh = d.ssh;
  if (!ssh.host) throw new PhaseError('connect', `no SSH address: set ssh.host for ${d.id} in the inventory (or give its site a static network address)`, false);
  const port = ssh.port ?? 22;
  const user = ssh.user ?? 'root';
  const creds = await credentialsFor(ssh.identityFile, run.opts.baseDir, run.env);

  // pins: the inventory and keys/known_hosts/<id> (a mismatch with these refuses)
  const khFile = deviceKnownHostsFile(run.opts.keysDir, d.id);
  const pinned: PinnedKey[] = [];
  if (ssh.hostKey) {
    const k = parseKeyLine(ssh.hostKey, `${run.opts.fleet.file} (ssh.hostKey of ${d.id})`);
    if (k) pinned.push(k);
  }
  pinned.push(...(await readKnownHostsFile(khFile, khFile)));
  // the host key edgeforge generated for the device is what it presents after its first apply
  const generated = await generatedHostKey(run.opts.keysDir, d.id);

  let sock;
  if (ssh.jumpHost) {
    const j = parseJumpHost(ssh.jumpHost);
    run.log.line(`connect: through gateway ${ssh.jumpHost}`);
    sock = await run.gateways.channel(j, user, creds, ssh.host, port, (l) => run.log.line(`connect: ${l}`));
  }

  let refusal: { d: HostKeyDecision; type: string } | undefined;
  let toRecord: Buffer | undefined;
  run.log.line(`connect: ${user}@${ssh.host}:${port} offering ${creds.offered}; pinned host keys: ${pinned.length}${generated ? ' + the generated one' : ''}`);
  try {
    run.session = await Session.open({
      host: ssh.host,
      port,
      user,
      privateKey: creds.privateKey,
      agent: creds.agent,
      timeoutMs: run.timeouts.connect,
      sock,
      verifyHostKey: (blob) => {
        if (generated?.blob.equals(blob)) return true;
        const dec = decide(blob, pinned);
        if (dec.kind === 'pinned') return true;
        if (dec.kind === 'unknown' && run.opts.trustNewHostKeys) {
          toRecord = blob;
          return true;
        }
        refusal = { d: dec, type: blobType(blob) };
        return false;
      },
    });
  } catch (err) {
    if (refusal && refusal.d.kind !== 'pinned') throw new PhaseError('connect', hostKeyMessage(refusal.d, `${d.id} (${ssh.host}:${port})`, refusal.type, khFile), false);
    if (err instanceof PhaseError) throw err;
    throw new PhaseError('connect', `${user}@${ssh.host}:${port}: ${describe(err)}`, isTransient(err));
  } finally {
    if (toRecord) {
      await recordHostKey(khFile, ssh.host, port, toRecord, d.id);
      run.log.line(`connect: recorded the device's host key in ${khFile} (--trust-new-host-keys)`);
    }
  }
  run.log.line('connect: host key verified, authenticated');
}
