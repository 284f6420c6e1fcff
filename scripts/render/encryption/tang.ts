// Tang advertisements, read and checked offline: a tang server advertises its keys as a JWS signed by its
// own signing keys. We trust an advertisement only when the inventory's pinned thumbprint is one of the
// keys that signed it (as `clevis encrypt tang` does with `thp`), so a swapped file cannot redirect a
// device's secrets to someone else's key.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

export interface EcJwk {
  kty: 'EC';
  crv: string;
  x: string;
  y: string;
  alg?: string;
  key_ops?: string[];
  [k: string]: unknown;
}

export interface TangAdvertisement {
  /** the advertisement as served by `GET /adv` (flattened or general JWS JSON) */
  jws: Record<string, unknown>;
  /** the signed payload: {"keys":[...]} exactly as the server listed them */
  jwks: { keys: EcJwk[] };
  /** the key clients derive with (alg ECMR, key_ops deriveKey) */
  exchangeKey: EcJwk;
  /** S256 thumbprints of the keys that signed the advertisement */
  signingThumbprints: string[];
}

export const b64u = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');
export const unb64u = (s: string): Buffer => {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  return Buffer.from(s, 'base64url');
};

const CURVES: Record<string, { hash: string; bytes: number; node: string }> = {
  'P-256': { hash: 'sha256', bytes: 32, node: 'prime256v1' },
  'P-384': { hash: 'sha384', bytes: 48, node: 'secp384r1' },
  'P-521': { hash: 'sha512', bytes: 66, node: 'secp521r1' },
};
const SIG_ALG: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

export function curveOf(jwk: EcJwk): { hash: string; bytes: number; node: string } {
  const c = CURVES[jwk.crv];
  if (jwk.kty !== 'EC' || !c) throw new Error(`unsupported key (kty ${String(jwk.kty)}, crv ${String(jwk.crv)}); tang uses EC P-521`);
  return c;
}

/** RFC 7638 JWK thumbprint of an EC key; S256 is what tang-show-keys prints, S1 what old tang printed. */
export function jwkThumbprint(jwk: EcJwk, alg: 'S256' | 'S1' = 'S256'): string {
  const canon = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64u(
    createHash(alg === 'S256' ? 'sha256' : 'sha1')
      .update(canon)
      .digest(),
  );
}

export function publicKeyOf(jwk: EcJwk): KeyObject {
  curveOf(jwk);
  return createPublicKey({ key: { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
}

/** The uncompressed point 04||X||Y, for node:crypto ECDH. */
export function pointOf(jwk: EcJwk): Buffer {
  const { bytes } = curveOf(jwk);
  const x = unb64u(jwk.x);
  const y = unb64u(jwk.y);
  if (x.length !== bytes || y.length !== bytes) throw new Error(`EC ${jwk.crv} coordinates must be ${bytes} bytes`);
  return Buffer.concat([Buffer.from([4]), x, y]);
}

/**
 * Parse and verify an advertisement. Every key with key_ops "verify" must have signed it (clevis checks
 * `jose jws ver -a`), and `pinnedThumbprint` (S256 or the older S1) must be one of them.
 * Throws with a message that says what to do.
 */
export function verifyAdvertisement(text: string, pinnedThumbprint: string, where = 'tang advertisement'): TangAdvertisement {
  let jws: Record<string, unknown>;
  try {
    jws = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${where} is not JSON: save it with \`curl -sf URL/adv > FILE\``);
  }
  if (typeof jws.payload !== 'string') throw new Error(`${where} has no JWS payload: is this the output of \`curl URL/adv\`?`);
  const payload = jws.payload;
  const sigs: { protected: string; signature: string }[] = Array.isArray(jws.signatures)
    ? (jws.signatures as { protected: string; signature: string }[])
    : [{ protected: jws.protected as string, signature: jws.signature as string }];
  let jwks: { keys: EcJwk[] };
  try {
    jwks = JSON.parse(unb64u(payload).toString('utf8')) as { keys: EcJwk[] };
  } catch {
    throw new Error(`${where}: the payload is not a JWK set`);
  }
  if (!Array.isArray(jwks.keys)) throw new Error(`${where}: the payload has no "keys"`);
  const verifyKeys = jwks.keys.filter((k) => Array.isArray(k.key_ops) && k.key_ops.includes('verify'));
  if (verifyKeys.length === 0) throw new Error(`${where} has no signing (verify) key`);
  for (const key of verifyKeys) {
    const pub = publicKeyOf(key);
    const ok = sigs.some((s) => {
      if (typeof s.protected !== 'string' || typeof s.signature !== 'string') return false;
      let hdr: { alg?: string };
      try {
        hdr = JSON.parse(unb64u(s.protected).toString('utf8')) as { alg?: string };
      } catch {
        return false;
      }
      if (!hdr.alg || SIG_ALG[hdr.alg] !== key.crv) return false;
      return verify(CURVES[key.crv].hash, Buffer.from(`${s.protected}.${payload}`), { key: pub, dsaEncoding: 'ieee-p1363' }, unb64u(s.signature));
    });
    if (!ok) throw new Error(`${where}: signing key ${jwkThumbprint(key)} did not sign it (damaged or forged advertisement); fetch it again from the tang server`);
  }
  const signingThumbprints = verifyKeys.map((k) => jwkThumbprint(k));
  const pinned = verifyKeys.some((k) => jwkThumbprint(k, 'S256') === pinnedThumbprint || jwkThumbprint(k, 'S1') === pinnedThumbprint);
  if (!pinned) {
    throw new Error(
      `${where} is signed by ${signingThumbprints.join(', ')}, not by the pinned thumbprint ${pinnedThumbprint}: either the file is from another tang server, or the server's keys were rotated (then pin the new thumbprint from \`tang-show-keys\` in the inventory)`,
    );
  }
  const exchange = jwks.keys.filter((k) => Array.isArray(k.key_ops) && k.key_ops.includes('deriveKey'));
  if (exchange.length === 0) throw new Error(`${where} has no exchange (deriveKey) key`);
  return { jws, jwks, exchangeKey: exchange[0], signingThumbprints };
}
