// The admin side of the keystore: the recipients every private file is encrypted to, and the one admin private
// key (EDGEFORGE_ADMIN_KEY or the demo key) that reads them back.
import { promises as fs } from 'node:fs';
import * as openpgp from '../util/openpgp.mjs';
import { decryptText } from './pgp-ops.mjs';
import { KeysError } from '../util/errors.ts';
import type { KeysLayout } from './layout.ts';
import { loadAdminRecipients } from './admins.ts';
import { exists } from './records.ts';
import type { AdminRecipient } from './types.ts';

export class AdminKeyring {
  private admins: AdminRecipient[] = [];
  private unlocked?: { armored: string; passphrase?: string; fingerprint: string; source: string };

  constructor(
    private readonly dir: string,
    private readonly layout: KeysLayout,
    private readonly opts: { adminKeyPath?: string; adminKeyPassphrase?: string } = {},
  ) {}

  async refresh(): Promise<AdminRecipient[]> {
    this.admins = await loadAdminRecipients(this.dir);
    return this.admins;
  }

  recipients(): AdminRecipient[] {
    return this.admins;
  }

  /** The armored public keys to encrypt to; refuses an empty list (nothing could ever decrypt it). */
  recipientsOrThrow(): string[] {
    if (this.admins.length === 0) {
      throw new KeysError(`no admin recipients in ${this.layout.adminsDir}/: run \`edgeforge keys init\` first (with --example-admin for a demo fleet)`);
    }
    return this.admins.map((a) => a.armored);
  }

  fingerprints(): string[] {
    return this.admins.flatMap((a) => a.fingerprints).sort();
  }

  /** Find the admin private key (EDGEFORGE_ADMIN_KEY or the example admin) and check it is one of the recipients. */
  async unlock(): Promise<{ fingerprint: string; source: string }> {
    if (this.unlocked) return this.unlocked;
    const fromOpt = this.opts.adminKeyPath ?? process.env.EDGEFORGE_ADMIN_KEY;
    let file: string | undefined = fromOpt;
    if (!file && (await exists(this.layout.exampleAdminPrivate))) file = this.layout.exampleAdminPrivate;
    if (!file) {
      throw new KeysError(
        `decrypting fleet keys needs an admin private key: set EDGEFORGE_ADMIN_KEY to an armored OpenPGP private key file ` +
          `whose public key is in ${this.layout.adminsDir}/ (e.g. gpg --export-secret-keys --armor FPR > admin.asc; chmod 600 admin.asc; ` +
          `set EDGEFORGE_ADMIN_KEY_PASSPHRASE if it has a passphrase)`,
      );
    }
    let armored: string;
    try {
      armored = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new KeysError(`cannot read admin private key ${file}${fromOpt ? ' (from EDGEFORGE_ADMIN_KEY)' : ''}: ${(err as Error).message}`);
    }
    let key: openpgp.PrivateKey;
    try {
      key = await openpgp.readPrivateKey({ armoredKey: armored });
    } catch (err) {
      throw new KeysError(`${file} is not an armored OpenPGP private key: ${(err as Error).message}`);
    }
    const fpr = key.getFingerprint().toUpperCase();
    if (!this.fingerprints().includes(fpr)) {
      throw new KeysError(
        `admin key ${file} (${fpr}) is not among the admin recipients in ${this.layout.adminsDir}/ (${this.fingerprints().join(', ') || 'none'}); fleet keys are encrypted only to those`,
      );
    }
    this.unlocked = { armored, passphrase: this.opts.adminKeyPassphrase ?? process.env.EDGEFORGE_ADMIN_KEY_PASSPHRASE, fingerprint: fpr, source: file };
    return { fingerprint: fpr, source: file };
  }

  async decrypt(file: string): Promise<string> {
    await this.unlock();
    const armored = await fs.readFile(file, 'utf8').catch((err: Error) => {
      throw new KeysError(`${file}: ${err.message}`, 'state');
    });
    try {
      // inline, not in the pool: with the session key cached (pgp-ops) a file is symmetric work only, and
      // shipping it to a worker and back costs more than decrypting it here (measured: bench:keys)
      return await decryptText({ armored, privateKeyArmored: this.unlocked!.armored, passphrase: this.unlocked!.passphrase });
    } catch (err) {
      throw new KeysError(
        `cannot decrypt ${file} with admin key ${this.unlocked!.fingerprint} (${this.unlocked!.source}): ${(err as Error).message}. Was it encrypted before this admin was added? Another admin must run rewrap.`,
        'state',
      );
    }
  }
}
