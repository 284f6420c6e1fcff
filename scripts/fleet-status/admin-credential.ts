// The broker's admin user (`edgeforge status` reads the fleet with it): unlike a device's 256-bit random
// password, a person chooses this one, so it is checked for length and hashed with many more PBKDF2 rounds.
// `status broker-config` needs only its hash: from the password (first run, or a new password), from a
// hash file, or kept from the passwd file it wrote before (every later run: no password needed).
import { promises as fs } from 'node:fs';
import { UsageError, UserError } from '../util/errors.ts';
import { ADMIN_PBKDF2_ITERATIONS, mosquittoHash, mosquittoHashIterations, verifyMosquittoHash } from '../keys/mosquitto-passwd.ts';

/** `openssl rand -hex 32` (docs/status.md) gives 64 characters; a floor, not a measure of a good password. */
export const ADMIN_PASSWORD_MIN_LENGTH = 20;
export const ADMIN_PASSWORD_MIN_DISTINCT = 10;

/** Why this admin password is too weak, or undefined. */
export function adminPasswordProblem(password: string): string | undefined {
  if (password.length < ADMIN_PASSWORD_MIN_LENGTH) return `is ${password.length} characters long; use at least ${ADMIN_PASSWORD_MIN_LENGTH} (openssl rand -hex 32 makes one of 64)`;
  const distinct = new Set(password).size;
  if (distinct < ADMIN_PASSWORD_MIN_DISTINCT) return `uses only ${distinct} different characters; use at least ${ADMIN_PASSWORD_MIN_DISTINCT} (openssl rand -hex 32 makes a good one)`;
  return undefined;
}

/** The hash of `user` in a Mosquitto passwd file's text ("user:$7$…" lines), or undefined. */
export function passwdLine(text: string, user: string): string | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${user}:`)) return line.slice(user.length + 1).trim();
  return undefined;
}

export type AdminSecret = { password: string; from: string } | { hashFile: string } | undefined;

export interface AdminHash {
  hash: string;
  /** where it came from, for the command's summary */
  source: 'password' | 'hash file' | 'kept';
  warnings: string[];
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new UserError(`${file}: ${e.code ?? e.message}`);
  });
}

/**
 * The admin's "$7$" hash for the broker's passwd file. `existingPasswd` is the passwd file broker-config wrote
 * before (kept when no password is given, and when the given one still matches it with enough rounds).
 */
export async function adminHash(adminUser: string, secret: AdminSecret, existingPasswd: string): Promise<AdminHash> {
  const old = passwdLine((await readOrUndefined(existingPasswd)) ?? '', adminUser);
  const oldRounds = old ? mosquittoHashIterations(old) : undefined;
  const strongEnough = (rounds: number | undefined) => rounds !== undefined && rounds >= ADMIN_PBKDF2_ITERATIONS;
  if (secret && 'password' in secret) {
    const weak = adminPasswordProblem(secret.password);
    if (weak) throw new UserError(`the broker admin password (${secret.from}) ${weak}`);
    if (old && strongEnough(oldRounds) && verifyMosquittoHash(secret.password, old)) return { hash: old, source: 'kept', warnings: [] };
    return { hash: mosquittoHash(secret.password, { iterations: ADMIN_PBKDF2_ITERATIONS }), source: 'password', warnings: [] };
  }
  if (secret && 'hashFile' in secret) {
    const text = await readOrUndefined(secret.hashFile);
    if (text === undefined) throw new UserError(`--admin-hash-file ${secret.hashFile}: ENOENT`);
    const first = text.split('\n')[0].trim();
    const hash = first.startsWith('$7$') ? first : passwdLine(text, adminUser);
    const rounds = hash ? mosquittoHashIterations(hash) : undefined;
    if (!hash || rounds === undefined)
      throw new UserError(`--admin-hash-file ${secret.hashFile}: no "$7$…" hash on its first line and no "${adminUser}:$7$…" line (the admin's line of a passwd file broker-config wrote)`);
    if (!strongEnough(rounds))
      throw new UserError(
        `--admin-hash-file ${secret.hashFile}: the hash uses ${rounds} PBKDF2 rounds, fewer than the ${ADMIN_PBKDF2_ITERATIONS.toLocaleString('en-US')} an admin password needs; let broker-config hash the password once (--password-file)`,
      );
    return { hash, source: 'hash file', warnings: [] };
  }
  if (!old || oldRounds === undefined) {
    throw new UsageError(
      `${existingPasswd} has no line for the admin user "${adminUser}": give its password once (--password-file FILE or $EDGEFORGE_STATUS_PASSWORD) or its hash (--admin-hash-file FILE); later runs keep it`,
    );
  }
  const warnings = strongEnough(oldRounds)
    ? []
    : [
        `the admin hash kept from ${existingPasswd} uses ${oldRounds} PBKDF2 rounds (an older edgeforge); give the password once more (--password-file) to rehash it with ${ADMIN_PBKDF2_ITERATIONS.toLocaleString('en-US')}`,
      ];
  return { hash: old, source: 'kept', warnings };
}
