// The admin recipients (keys/admins/*.asc): every private part is encrypted to all of them; the inventory's
// `admins` list says who they should be.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as openpgp from '../util/openpgp.mjs';
import { KeysError } from '../util/errors.ts';
import { KeysLayout } from './layout.ts';
import type { AdminRecipient } from './types.ts';

/** Admin recipients: every `*.asc` under keys/admins/ (one or more public keys each), sorted by file name. */
export async function loadAdminRecipients(dir: string): Promise<AdminRecipient[]> {
  const layout = new KeysLayout(dir);
  let names: string[];
  try {
    names = (await fs.readdir(layout.adminsDir)).filter((n) => n.endsWith('.asc')).sort();
  } catch {
    return [];
  }
  const out: AdminRecipient[] = [];
  for (const name of names) {
    const file = path.join(layout.adminsDir, name);
    const armored = await fs.readFile(file, 'utf8');
    let keys: openpgp.Key[];
    try {
      keys = await openpgp.readKeys({ armoredKeys: armored });
    } catch (err) {
      throw new KeysError(`${file}: not an armored OpenPGP public key (${(err as Error).message}); export one with: gpg --export --armor FINGERPRINT > ${file}`);
    }
    for (const k of keys) {
      if (k.isPrivate()) throw new KeysError(`${file}: holds a PRIVATE key; admin recipients must be public keys only (gpg --export --armor FINGERPRINT)`);
      try {
        await k.getEncryptionKey();
      } catch (err) {
        throw new KeysError(`${file}: key ${k.getFingerprint().toUpperCase()} has no usable encryption key (${(err as Error).message})`);
      }
    }
    out.push({
      file: path.relative(dir, file),
      fingerprints: keys.map((k) => k.getFingerprint().toUpperCase()),
      userIds: keys.flatMap((k) => k.getUserIDs()),
      example: name === path.basename(layout.exampleAdminPublic),
      armored,
    });
  }
  return out;
}

/**
 * Compare the inventory's `admins` list with keys/admins/: a pinned fingerprint that no key file holds is an
 * error (secrets would be encrypted to the wrong people); an unpinned admin whose email no key carries, or a
 * key file nobody in the inventory names, is a warning.
 */
export function checkAdminPins(
  recipients: Pick<AdminRecipient, 'file' | 'fingerprints' | 'userIds' | 'example'>[],
  expected: { name: string; email: string; fingerprint?: string }[],
): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const all = recipients.flatMap((r) => r.fingerprints);
  const used = new Set<string>();
  for (const a of expected) {
    if (a.fingerprint) {
      const r = recipients.find((x) => x.fingerprints.includes(a.fingerprint!.toUpperCase()));
      if (!r) errors.push(`admin ${a.name} <${a.email}> is pinned to ${a.fingerprint}, but no key in keys/admins/ has that fingerprint (have: ${all.join(', ') || 'none'})`);
      else used.add(r.file);
    } else {
      const r = recipients.find((x) => x.userIds.some((u) => u.toLowerCase().includes(`<${a.email.toLowerCase()}>`)));
      if (!r) warnings.push(`admin ${a.name} <${a.email}> has no key in keys/admins/ (add it: gpg --export --armor ${a.email} > keys/admins/NAME.asc) — pin it with fingerprint: in the inventory`);
      else used.add(r.file);
    }
  }
  for (const r of recipients) if (!used.has(r.file) && !r.example) warnings.push(`${r.file} (${r.userIds.join(', ')}) is an admin recipient that the inventory's admins list does not name`);
  return { errors, warnings };
}
