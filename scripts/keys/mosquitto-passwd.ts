// Mosquitto password-file hashes, written by edgeforge itself (no mosquitto_passwd on the operator's
// laptop): Mosquitto 2.0's "$7$" format is PBKDF2-HMAC-SHA512, `$7$<iterations>$<base64 salt>$<base64 hash>`,
// 12-byte salt, 64-byte hash, 101 iterations by default (what mosquitto_passwd 2.0.11 writes; the tests
// check that the real broker accepts ours and that we verify its own).
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const MOSQUITTO_PBKDF2_ITERATIONS = 101;

export function mosquittoHash(password: string, opts: { salt?: Buffer; iterations?: number } = {}): string {
  const salt = opts.salt ?? randomBytes(12);
  const it = opts.iterations ?? MOSQUITTO_PBKDF2_ITERATIONS;
  const hash = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, it, 64, 'sha512');
  return `$7$${it}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function verifyMosquittoHash(password: string, encoded: string): boolean {
  const m = /^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(encoded);
  if (!m) return false;
  const want = Buffer.from(m[3], 'base64');
  const got = pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(m[2], 'base64'), Number(m[1]), want.length, 'sha512');
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A device's broker password: 256 bits, hex (nothing to quote in a mosquitto_pub options file or a shell). */
export function statusPassword(): string {
  return randomBytes(32).toString('hex');
}
