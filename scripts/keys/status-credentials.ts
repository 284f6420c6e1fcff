// Per-device broker credentials for fleet status (docs/status.md): a random password per device,
// made with its other keys, never shared. Unlike the one-time secrets it lives on the device for good
// (0600 on the root filesystem), so it is rotated by generation like the rest and disabled by `revoke`.
//
//   keys/devices/<id>/status-credential.json          public record: generation, the Mosquitto hash
//                                                      ($7$ PBKDF2-SHA512), disabled {at, reason} after a revoke
//   keys/devices/<id>/status-credential-g<N>.enc.asc  the password, OpenPGP-encrypted to every admin
//
// The broker config needs only the hashes (no admin key); rendering a device needs the password (one admin
// key, through the KeyStore's crypto). The encrypted file is written first, the record last (commit point).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { KeysLayout } from './layout.ts';
import { withKeysLock } from './lock.ts';
import type { StoreContext } from './identity.ts';
import { KeysError } from '../util/errors.ts';
import { mosquittoHash, statusPassword, verifyMosquittoHash } from './mosquitto-passwd.ts';

export const STATUS_CREDENTIAL_FORMAT = 'edgeforge-status-credential/1';

export interface StatusCredentialRecord {
  format: typeof STATUS_CREDENTIAL_FORMAT;
  id: string;
  /** the broker user name: the device id */
  username: string;
  generation: number;
  created: string;
  /** Mosquitto password_file hash of the current password; absent while disabled */
  mosquittoHash?: string;
  disabled?: { at: string; reason: string };
  history: { generation: number; created: string; retired: string; reason: string }[];
}

/** What this module needs from the keystore: encrypt to every admin, decrypt a file with the unlocked admin key. */
export interface CredentialCrypto {
  encrypt(text: string): Promise<string>;
  decrypt(file: string): Promise<string>;
}

/** The keystore's own crypto (its worker pool, its admin recipients and unlocked admin key). */
export function keystoreCrypto(store: Pick<StoreContext, 'admins' | 'pool'>): CredentialCrypto {
  return {
    encrypt: (text) => store.pool.run('encryptText', { text, recipients: store.admins.recipientsOrThrow() }),
    decrypt: (file) => store.admins.decrypt(file),
  };
}

/** Every encrypted password file of a device (all generations), for `keys rewrap`. */
export async function statusCredentialSecretFiles(layout: KeysLayout, id: string): Promise<string[]> {
  const dir = layout.deviceDir(id);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => /^status-credential-g\d+\.enc\.asc$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

const recordFile = (layout: KeysLayout, id: string) => path.join(layout.deviceDir(id), 'status-credential.json');
const secretFile = (layout: KeysLayout, id: string, g: number) => path.join(layout.deviceDir(id), `status-credential-g${g}.enc.asc`);

export async function readStatusCredential(keysDir: string, id: string): Promise<StatusCredentialRecord | undefined> {
  const file = recordFile(new KeysLayout(keysDir), id);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const rec = JSON.parse(text) as StatusCredentialRecord;
  if (rec.format !== STATUS_CREDENTIAL_FORMAT || rec.id !== id) throw new KeysError(`${file}: not the status credential of device "${id}"`, 'state');
  return rec;
}

/** id -> Mosquitto hash, for the enabled credentials among `ids` (the broker config). */
export async function statusCredentialHashes(keysDir: string, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const id of ids) {
    const rec = await readStatusCredential(keysDir, id);
    if (rec?.mosquittoHash && !rec.disabled) out.set(id, rec.mosquittoHash);
  }
  return out;
}

async function writeGeneration(keysDir: string, id: string, generation: number, crypto: CredentialCrypto, history: StatusCredentialRecord['history'], now: Date): Promise<string> {
  const layout = new KeysLayout(keysDir);
  const password = statusPassword();
  await writeFileAtomic(secretFile(layout, id, generation), await crypto.encrypt(password + '\n'), { mode: 0o600 });
  const rec: StatusCredentialRecord = { format: STATUS_CREDENTIAL_FORMAT, id, username: id, generation, created: now.toISOString(), mosquittoHash: mosquittoHash(password), history };
  await writeFileAtomic(recordFile(layout, id), JSON.stringify(rec, null, 2) + '\n');
  return password;
}

/** Create the credentials that do not exist yet (encrypting needs only the admins' public keys). */
export async function createMissingStatusCredentials(keysDir: string, ids: string[], crypto: CredentialCrypto, now = new Date()): Promise<{ created: string[]; passwords: Map<string, string> }> {
  const created: string[] = [];
  const passwords = new Map<string, string>();
  const missing: string[] = [];
  for (const id of ids) if (!(await readStatusCredential(keysDir, id))) missing.push(id);
  if (!missing.length) return { created, passwords };
  await withKeysLock(keysDir, async () => {
    for (const id of missing) {
      // another run may have made it while we waited for the lock
      if (await readStatusCredential(keysDir, id)) continue;
      passwords.set(id, await writeGeneration(keysDir, id, 1, crypto, [], now));
      created.push(id);
    }
  });
  return { created, passwords };
}

/**
 * The current password of each device (created when missing). A disabled credential (revoked device) is
 * never handed out: that device gets no artifacts anyway.
 */
export async function ensureStatusCredentials(keysDir: string, ids: string[], crypto: CredentialCrypto, now = new Date()): Promise<{ passwords: Map<string, string>; created: string[] }> {
  const layout = new KeysLayout(keysDir);
  const { created, passwords } = await createMissingStatusCredentials(keysDir, ids, crypto, now);
  for (const id of ids) {
    if (passwords.has(id)) continue;
    const rec = await readStatusCredential(keysDir, id);
    if (!rec) throw new KeysError(`device "${id}": no broker credential in ${keysDir}/devices/${id}/`, 'state');
    if (rec.disabled)
      throw new KeysError(`device "${id}": its broker credential was disabled (${rec.disabled.reason}, ${rec.disabled.at}); rotate it (keys rotate --device ${id}) to give the slot a new one`);
    const file = secretFile(layout, id, rec.generation);
    const pw = (await crypto.decrypt(file)).trim();
    if (rec.mosquittoHash && !verifyMosquittoHash(pw, rec.mosquittoHash)) throw new KeysError(`${file}: the password does not match the hash in status-credential.json (edited or mixed up?)`, 'state');
    passwords.set(id, pw);
  }
  return { passwords, created };
}

/** A new password generation (keys rotate --device; also re-enables a disabled credential). */
export async function rotateStatusCredential(keysDir: string, id: string, crypto: CredentialCrypto, reason = 'rotate', now = new Date()): Promise<{ from: number; to: number }> {
  return withKeysLock(keysDir, async () => {
    const rec = await readStatusCredential(keysDir, id);
    const from = rec?.generation ?? 0;
    const history = rec ? [...rec.history, { generation: rec.generation, created: rec.created, retired: now.toISOString(), reason }] : [];
    await writeGeneration(keysDir, id, from + 1, crypto, history, now);
    return { from, to: from + 1 };
  });
}

/**
 * `revoke`: the credential is disabled — its hash leaves the record, so the next `status broker-config`
 * writes no user for the device (the inventory's revoked status does the same; this survives an
 * inventory edited back by mistake). Returns false when the device never had one.
 */
export async function disableStatusCredential(keysDir: string, id: string, reason: string, now = new Date()): Promise<boolean> {
  return withKeysLock(keysDir, async () => {
    const rec = await readStatusCredential(keysDir, id);
    if (!rec) return false;
    if (rec.disabled) return true;
    const { mosquittoHash: _gone, ...rest } = rec;
    await writeFileAtomic(recordFile(new KeysLayout(keysDir), id), JSON.stringify({ ...rest, disabled: { at: now.toISOString(), reason } }, null, 2) + '\n');
    return true;
  });
}
