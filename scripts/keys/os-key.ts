// The fleet's OS-update key (docs/os-updates.md): signs RAUC bundles and the ring pointers devices follow. X.509
// (RAUC verifies bundles with OpenSSL against the certificate in each device's keyring): a self-signed RSA-3072
// certificate, kept like the build-signing key — the certificate in clear, the private key OpenPGP-encrypted to
// the admins (keys/os-update/). openssl makes both; the private key goes from its stdout straight into the
// encryption, and back to openssl or rauc on stdin when it signs: it never sits on a disk in clear.
// RSA (PKCS#1 v1.5) signs deterministically, so the same pointer signed twice gives the same bytes.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.ts';
import { KeysError } from '../util/errors.ts';
import { KeysLayout } from './layout.ts';
import { withKeysLock } from './lock.ts';
import { exists } from './records.ts';
import type { KeyStore } from './store.ts';

/** Twenty years: the certificate must outlive the devices (a device checks it against its clock). */
export const OS_CERT_DAYS = 7300;

/**
 * Runs `cmd args` with `secret` on a stdin that is a real pipe: Node hands a child a socket, which OpenSSL's
 * fopen("/dev/stdin") cannot open (ENXIO), so `cat` copies it into a pipe first. Never a file.
 */
export function spawnWithSecret(cmd: string, args: string[], secret: string | undefined) {
  if (secret === undefined) return spawnSync(cmd, args, { maxBuffer: 64 << 20 });
  return spawnSync('sh', ['-c', 'cat | "$@"', 'sh', cmd, ...args], { input: secret, maxBuffer: 64 << 20 });
}

function openssl(args: string[], input?: string): string {
  const r = spawnWithSecret('openssl', args, input);
  if (r.error) throw new KeysError(`cannot run openssl (Debian package openssl): ${r.error.message}`);
  if (r.status !== 0) throw new KeysError(`openssl ${args[0]} failed: ${(r.stderr?.toString() || '').trim().split('\n').slice(-3).join(' ')}`);
  return r.stdout.toString();
}

export interface OsKeyInfo {
  certPem: string;
  /** SHA-256 fingerprint of the certificate, as openssl prints it */
  fingerprint: string;
  subject: string;
  notAfter: string;
  created: boolean;
}

function describe(certPem: string): Omit<OsKeyInfo, 'certPem' | 'created'> {
  const out = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-subject', '-enddate', '-nameopt', 'RFC2253'], certPem);
  const get = (k: string) => out.match(new RegExp(`^${k}=(.*)$`, 'mi'))?.[1]?.trim() ?? '';
  return { fingerprint: get('sha256 Fingerprint'), subject: get('subject'), notAfter: get('notAfter') };
}

/** The OS-update certificate (public), or undefined when the fleet has none yet. Needs no admin key. */
export async function readOsCert(dir: string): Promise<string | undefined> {
  const layout = new KeysLayout(dir);
  try {
    return await fs.readFile(layout.osCert, 'utf8');
  } catch {
    return undefined;
  }
}

/** Makes the OS-update key when the fleet has none (needs only the admins' public keys); idempotent. */
export async function ensureOsKey(store: KeyStore, fleet: string): Promise<OsKeyInfo> {
  const layout = store.layout;
  return withKeysLock(store.dir, async () => {
    const haveCert = await exists(layout.osCert);
    const havePriv = await exists(layout.osPrivate);
    if (haveCert !== havePriv) {
      throw new KeysError(
        `the OS-update key is half present (${haveCert ? layout.osCert : layout.osPrivate} without its pair): restore it from your key backup, or delete both to make a new one (devices trust only the certificate they were built with: a new key needs every device rebuilt and reflashed or provisioned)`,
        'state',
      );
    }
    if (haveCert) {
      const certPem = await fs.readFile(layout.osCert, 'utf8');
      return { certPem, ...describe(certPem), created: false };
    }
    const recipients = store.admins.recipientsOrThrow();
    const keyPem = openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072']);
    const certPem = openssl(
      [
        'req',
        '-x509',
        '-key',
        '/dev/stdin',
        '-subj',
        `/O=edgeforge/OU=${fleet}/CN=${fleet} OS updates`,
        '-days',
        String(OS_CERT_DAYS),
        '-addext',
        'keyUsage=critical,digitalSignature,keyCertSign',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
      ],
      keyPem,
    );
    const { encryptText } = await import('./pgp-ops.mjs');
    await fs.mkdir(layout.osDir, { recursive: true });
    // private first, the certificate (the commit point) last
    await writeFileAtomic(layout.osPrivate, await encryptText({ text: keyPem, recipients }), { mode: 0o600 });
    await writeFileAtomic(layout.osCert, certPem, { mode: 0o644 });
    return { certPem, ...describe(certPem), created: true };
  });
}

/** The private key (PEM), decrypted with the admin key: for `signWith`, never written anywhere. */
export async function unlockOsKey(store: KeyStore): Promise<{ keyPem: string; certPem: string }> {
  const layout = store.layout;
  if (!(await exists(layout.osCert)) || !(await exists(layout.osPrivate))) throw new KeysError(`no OS-update key in ${layout.osDir}/: \`edgeforge os bundle\` makes one`, 'state');
  await store.unlock();
  const keyPem = await store.admins.decrypt(layout.osPrivate);
  const certPem = await fs.readFile(layout.osCert, 'utf8');
  // the pair must match: a key restored from another backup would sign what devices refuse
  const pubOfKey = openssl(['pkey', '-pubout'], keyPem);
  const pubOfCert = openssl(['x509', '-noout', '-pubkey'], certPem);
  if (pubOfKey.trim() !== pubOfCert.trim()) throw new KeysError(`${layout.osPrivate} does not hold the key of ${layout.osCert}`, 'state');
  return { keyPem, certPem };
}

/** A detached CMS signature (DER) over `content` (a file), without signed attributes: the same input gives the same bytes. */
export function cmsSign(contentFile: string, certFile: string, keyPem: string): Buffer {
  const r = spawnWithSecret('openssl', ['cms', '-sign', '-binary', '-noattr', '-in', contentFile, '-signer', certFile, '-inkey', '/dev/stdin', '-outform', 'DER'], keyPem);
  if (r.error) throw new KeysError(`cannot run openssl (Debian package openssl): ${r.error.message}`);
  if (r.status !== 0) throw new KeysError(`openssl cms -sign failed: ${r.stderr.toString().trim()}`);
  return r.stdout;
}
