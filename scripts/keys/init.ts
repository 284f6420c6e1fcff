// `keys init`: the admin recipients (or a demo admin), the build-signing key and the directory skeleton.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as openpgp from '../util/openpgp.mjs';
import { sweepTempFiles, writeFileAtomic } from '../util/atomic.ts';
import { KeysError } from '../util/errors.ts';
import { KeysLayout } from './layout.ts';
import { withKeysLock } from './lock.ts';
import { loadAdminRecipients } from './admins.ts';
import { exists } from './records.ts';
import { DEFAULT_KEY_DATE } from './types.ts';

export interface InitResult {
  /** files created by this run (relative to keys/); empty on a second run */
  created: string[];
  /** loud messages the CLI must print (example admin key in use) */
  warnings: string[];
  admins: { file: string; fingerprints: string[]; example: boolean }[];
  buildKeyFingerprint: string;
}

export const EXAMPLE_ADMIN_WARNING =
  'EXAMPLE ADMIN KEY IN USE: keys/example-admin/admin.private.asc is an UNENCRYPTED admin private key generated for demos. ' +
  "Anyone who can read it can decrypt every fleet secret. For a real fleet: put your admins' public keys in keys/admins/ " +
  '(gpg --export --armor FPR > keys/admins/NAME.asc), delete keys/admins/example-admin.asc and keys/example-admin/, ' +
  'then re-encrypt (rewrap) and rotate the keys made while it was in use.';

/**
 * `keys init`: admin recipients (or, with exampleAdmin and none present, an example admin key pair),
 * the fleet's build-signing key, and the directories for per-site/per-device material. Idempotent.
 */
export async function initKeys(opts: { dir?: string; exampleAdmin?: boolean; fleet?: string; keyDate?: string } = {}): Promise<InitResult> {
  const dir = opts.dir ?? 'keys';
  const layout = new KeysLayout(dir);
  const keyDate = opts.keyDate ?? DEFAULT_KEY_DATE;
  const { generateV4Key, encryptText } = await import('./pgp-ops.mjs');
  return withKeysLock(dir, async () => {
    await sweepTempFiles(dir);
    const created: string[] = [];
    const warnings: string[] = [];
    for (const d of [layout.adminsDir, layout.devicesDir, layout.sitesDir, layout.buildDir]) await fs.mkdir(d, { recursive: true });
    let admins = await loadAdminRecipients(dir);
    if (admins.length === 0) {
      if (!opts.exampleAdmin) {
        throw new KeysError(
          `no admin recipients in ${layout.adminsDir}/: add your admins' OpenPGP public keys ` +
            `(gpg --export --armor FINGERPRINT > ${layout.adminsDir}/NAME.asc) and run keys init again, ` +
            `or use --example-admin for a demo fleet`,
        );
      }
      const k = await generateV4Key({ name: 'edgeforge EXAMPLE admin - demo only, not for production', email: 'example-admin@edgeforge.invalid', date: keyDate });
      await writeFileAtomic(layout.exampleAdminPrivate, k.privateKeyArmored, { mode: 0o600 });
      await writeFileAtomic(layout.exampleAdminWarning, EXAMPLE_ADMIN_WARNING + '\n', { mode: 0o644 });
      await writeFileAtomic(layout.exampleAdminPublic, k.publicKeyArmored, { mode: 0o644 });
      created.push(layout.exampleAdminPrivate, layout.exampleAdminWarning, layout.exampleAdminPublic);
      admins = await loadAdminRecipients(dir);
    }
    if (await exists(layout.exampleAdminPrivate)) warnings.push(EXAMPLE_ADMIN_WARNING);

    const havePub = await exists(layout.buildPublic);
    const havePriv = await exists(layout.buildPrivate);
    if (havePub !== havePriv) {
      throw new KeysError(
        `build signing key is half present (${havePub ? layout.buildPublic : layout.buildPrivate} without its pair); restore it from your key backup, or delete both to make a new build key (verifiers pinning the old fingerprint must then be updated)`,
        'state',
      );
    }
    let buildKeyFingerprint: string;
    if (!havePub) {
      const k = await generateV4Key({ name: `edgeforge build signing key${opts.fleet ? ` (${opts.fleet})` : ''}`, email: 'build-signing@edgeforge.invalid', date: keyDate });
      const armored = await encryptText({ text: k.privateKeyArmored, recipients: admins.map((a) => a.armored) });
      // private first, public (the commit point) last
      await writeFileAtomic(layout.buildPrivate, armored, { mode: 0o600 });
      await writeFileAtomic(layout.buildPublic, k.publicKeyArmored, { mode: 0o644 });
      await writeFileAtomic(layout.buildFingerprintFile, k.fingerprint + '\n', { mode: 0o644 });
      created.push(layout.buildPrivate, layout.buildPublic, layout.buildFingerprintFile);
      buildKeyFingerprint = k.fingerprint;
    } else {
      const pub = await openpgp.readKey({ armoredKey: await fs.readFile(layout.buildPublic, 'utf8') });
      buildKeyFingerprint = pub.getFingerprint().toUpperCase();
      if (!(await exists(layout.buildFingerprintFile))) {
        await writeFileAtomic(layout.buildFingerprintFile, buildKeyFingerprint + '\n', { mode: 0o644 });
        created.push(layout.buildFingerprintFile);
      }
    }
    return {
      created: created.map((f) => path.relative(dir, f)),
      warnings,
      admins: admins.map((a) => ({ file: a.file, fingerprints: a.fingerprints, example: a.example })),
      buildKeyFingerprint,
    };
  });
}
