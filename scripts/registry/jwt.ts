// The bearer tokens distribution's `auth: token` accepts (its registry/auth/token package, v2.8): a JWS signed
// ES256, header `kid` = the libtrust key ID of a public key in the registry's rootcertbundle, claims iss/aud/
// sub/exp/nbf/iat/jti and `access` [{type, name, actions}]. Written with node:crypto; checked against the real
// registry by test/registry/.
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';

export interface Access {
  type: 'repository';
  name: string;
  actions: string[];
}

/** libtrust's key ID: sha256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, 12 groups of 4. */
export function libtrustKeyId(key: KeyObject): string {
  const der = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const s = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  return s.match(/.{4}/g)!.join(':');
}

function base32(b: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export interface TokenClaims {
  issuer: string;
  service: string;
  subject: string;
  access: Access[];
  /** seconds */
  ttl: number;
  now?: Date;
}

/** A signed token for `subject` with exactly `access`. */
export function signToken(key: KeyObject, c: TokenClaims): { token: string; expiresIn: number; issuedAt: string } {
  const now = Math.floor((c.now ?? new Date()).getTime() / 1000);
  const header = { typ: 'JWT', alg: 'ES256', kid: libtrustKeyId(key) };
  // nbf a little in the past: the registry's clock may lag the issuer's (it allows a minute of leeway itself)
  const claims = { iss: c.issuer, sub: c.subject, aud: c.service, exp: now + c.ttl, nbf: now - 30, iat: now, jti: randomBytes(16).toString('hex'), access: c.access };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return { token: `${input}.${b64url(sig)}`, expiresIn: c.ttl, issuedAt: new Date(now * 1000).toISOString() };
}
