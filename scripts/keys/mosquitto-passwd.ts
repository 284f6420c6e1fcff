// Mosquitto password-file hashes, written by edgeforge itself (no mosquitto_passwd on the operator's
// laptop): Mosquitto 2.0's "$7$" format is PBKDF2-HMAC-SHA512, `$7$<iterations>$<base64 salt>$<base64 hash>`,
// 12-byte salt, 64-byte hash. The broker reads the iteration count from each line, so devices and the admin
// can differ (the tests check that the real broker accepts ours and that we verify mosquitto_passwd's).
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** Devices: what mosquitto_passwd 2.0.11 writes. Their passwords are 256 random bits, so rounds add nothing, and
 *  2,000 devices log in every period. */
export const MOSQUITTO_PBKDF2_ITERATIONS = 101;

/**
 * The admin user: a password a person chose and keeps in a file, so a leaked passwd file must not give it away
 * cheaply. Not OWASP's 210,000 for PBKDF2-SHA512: Mosquitto checks passwords on its one thread, so every login
 * attempt as the admin (a wrong one too) holds the broker that long — 100,000 rounds measured 48 ms here (Node's
 * OpenSSL, the same PBKDF2 the broker calls).
 */
export const ADMIN_PBKDF2_ITERATIONS = 100_000;

const HASH_RE = /^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

export function mosquittoHash(password: string, opts: { salt?: Buffer; iterations?: number } = {}): string {
  const salt = opts.salt ?? randomBytes(12);
  const it = opts.iterations ?? MOSQUITTO_PBKDF2_ITERATIONS;
  const hash = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, it, 64, 'sha512');
  return `$7$${it}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The PBKDF2 rounds of a "$7$" hash, or undefined when it is not one. */
export function mosquittoHashIterations(encoded: string): number | undefined {
  const m = HASH_RE.exec(encoded);
  return m ? Number(m[1]) : undefined;
}

export function verifyMosquittoHash(password: string, encoded: string): boolean {
  const m = HASH_RE.exec(encoded);
  if (!m) return false;
  const want = Buffer.from(m[3], 'base64');
  const got = pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(m[2], 'base64'), Number(m[1]), want.length, 'sha512');
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A device's broker password: 256 bits, hex (nothing to quote in a mosquitto_pub options file or a shell). */
export function statusPassword(): string {
  return randomBytes(32).toString('hex');
}
