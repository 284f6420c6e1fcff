// Client credentials: the inventory's identityFile, an agent (SSH_AUTH_SOCK), or OpenSSH's default keys.
// Keys are read once per run, however many devices use them.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { PhaseError } from './errors.ts';

/** An SSH key file that needs a passphrase (fine when an agent holds the key). */
class LockedKeyError extends PhaseError {}

export interface Credentials {
  privateKey?: Buffer;
  agent?: string;
  /** for messages: what was offered */
  offered: string;
}

const cache = new Map<string, Promise<Buffer | PhaseError>>();

function expand(file: string, baseDir: string, home: string): string {
  if (file === '~') return home;
  if (file.startsWith('~/')) return path.join(home, file.slice(2));
  return path.resolve(baseDir, file);
}

async function readKey(file: string, shown: string): Promise<Buffer | PhaseError> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    return new PhaseError('connect', `cannot read the SSH key ${shown}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (ssh.identityFile is relative to the inventory file)`, false);
  }
  const parsed = ssh2.utils.parseKey(buf);
  if (parsed instanceof Error) {
    // ssh2's own error says whether the key is encrypted only in its message
    if (/passphrase|encrypted/i.test(parsed.message)) {
      return new LockedKeyError('connect', `the SSH key ${shown} is passphrase-protected: load it into an agent (ssh-add ${shown}) and keep SSH_AUTH_SOCK set`, false);
    }
    return new PhaseError('connect', `the SSH key ${shown} is not a private key ssh2 can read (${parsed.message})`, false);
  }
  return buf;
}

/**
 * Credentials for one device. `identityFile` wins; an agent is offered beside it; with neither, OpenSSH's
 * default key files are tried (the first that exists).
 */
export async function credentialsFor(identityFile: string | undefined, baseDir: string, env: NodeJS.ProcessEnv): Promise<Credentials> {
  const home = env.HOME ?? os.homedir();
  const agent = env.SSH_AUTH_SOCK || undefined;
  let files: string[] = [];
  if (identityFile) files = [expand(identityFile, baseDir, home)];
  else if (!agent) files = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => path.join(home, '.ssh', n));
  for (const f of files) {
    if (!identityFile) {
      try {
        await fs.access(f);
      } catch {
        continue;
      }
    }
    let p = cache.get(f);
    if (!p) cache.set(f, (p = readKey(f, identityFile ?? f)));
    const key = await p;
    if (key instanceof PhaseError) {
      // an encrypted key is fine when an agent holds it
      if (agent && key instanceof LockedKeyError) return { agent, offered: `agent ${agent}` };
      throw key;
    }
    return { privateKey: key, agent, offered: `key ${identityFile ?? f}${agent ? ` and agent ${agent}` : ''}` };
  }
  if (agent) return { agent, offered: `agent ${agent}` };
  throw new PhaseError('connect', 'no SSH credentials: set ssh.identityFile in the inventory, or start an agent (ssh-agent; ssh-add) and keep SSH_AUTH_SOCK set', false);
}
