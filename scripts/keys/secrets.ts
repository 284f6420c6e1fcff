// Random secrets that are not key pairs. All randomness from the OS CSPRNG (node:crypto).
import { randomBytes } from 'node:crypto';

/**
 * K3s server token: K3s accepts any string, and it ends up in /etc/rancher/k3s/config.yaml and shell,
 * so it is plain lowercase hex (256 bits) — nothing to quote or escape anywhere.
 */
export function k3sToken(): string {
  return randomBytes(32).toString('hex');
}

/**
 * K3s agent token (`agent-token` on a server, `token` on its agents): agents join with it, and it cannot
 * be used to join as a server, so a stolen agent does not hand out the server token. 256 bits, hex.
 */
export function agentToken(): string {
  return randomBytes(32).toString('hex');
}

// Crockford base32: no I, L, O, U — nothing that reads as another character when typed from paper.
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * LUKS recovery passphrase for an operator to type at a console: 8 groups of 5 Crockford base32
 * characters (200 bits), e.g. "7K2QF-…". Uppercase only, '-' separated, no ambiguous glyphs.
 */
export function luksRecoveryPassphrase(): string {
  const bytes = randomBytes(40); // one byte per character, low 5 bits used: exact uniform over 32 symbols
  const chars = Array.from(bytes, (b) => CROCKFORD[b & 31]);
  const groups: string[] = [];
  for (let i = 0; i < chars.length; i += 5) groups.push(chars.slice(i, i + 5).join(''));
  return groups.join('-');
}
