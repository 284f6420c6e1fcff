// Offline sealing to a tang server: what `clevis encrypt tang` does, without contacting the server.
//
// Tang's McCallum-Relyea exchange needs the server only to DECRYPT. To encrypt, the client does a plain
// ECDH-ES key agreement against the server's advertised exchange key (alg ECMR, P-521): pick an ephemeral
// key e, Z = e·S (S the server's public key), derive the content key with the JOSE Concat KDF, encrypt with
// A256GCM, and put the ephemeral public key (epk), the exchange key's thumbprint (kid) and the advertisement
// in the protected header under "clevis". To decrypt, clevis blinds epk with a fresh key, has tang multiply
// it by its private key (POST /rec/kid) and unblinds: it recovers Z without tang ever seeing Z or epk.
// So a JWE written here opens only on a machine that can reach that tang server — the device on its site.
//
// Output is a compact JWE exactly like `clevis encrypt tang` writes (checked against `clevis decrypt`).
import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, randomBytes } from 'node:crypto';
import { b64u, curveOf, jwkThumbprint, pointOf, unb64u, type EcJwk, type TangAdvertisement } from './tang.ts';

export interface SealOptions {
  /**
   * Deterministic sealing: derive the ephemeral key and IV from this secret (with HMAC, RFC 6979 style)
   * instead of the CSPRNG, so the same inventory + keys rebuild byte-identical artifacts. Use a value only
   * the build knows (the plaintext itself is fine: it is high-entropy secret material). Same seed + same
   * plaintext + same server gives the same JWE; anything different gives an unrelated ephemeral key.
   */
  seed?: Uint8Array;
}

// Group orders, to turn derived bytes into a valid private scalar in [1, n-1].
export const CURVE_ORDERS: Record<string, bigint> = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384': 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  'P-521': 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};

function derive(seed: Uint8Array, label: string, len: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; Buffer.concat(out).length < len; i++) out.push(createHmac('sha512', seed).update(`edgeforge-seal/1\0${label}\0${i}`).digest());
  return Buffer.concat(out).subarray(0, len);
}

function scalarFrom(bytes: Buffer, crv: string, size: number): Buffer {
  const n = CURVE_ORDERS[crv];
  const k = (BigInt('0x' + bytes.toString('hex')) % (n - 1n)) + 1n; // 2x oversized input: bias < 2^-250
  return Buffer.from(k.toString(16).padStart(size * 2, '0'), 'hex');
}

/** JOSE Concat KDF (RFC 7518 4.6.2) for ECDH-ES direct key agreement with empty apu/apv. */
export function concatKdf(z: Uint8Array, enc: string, keyBits: number): Buffer {
  const len32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const alg = Buffer.from(enc, 'ascii');
  const out: Buffer[] = [];
  for (let i = 1; out.length * 32 < keyBits / 8; i++) {
    out.push(
      createHash('sha256')
        .update(Buffer.concat([len32(i), z, len32(alg.length), alg, len32(0), len32(0), len32(keyBits)]))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, keyBits / 8);
}

/** Seal `plaintext` to a tang server's verified advertisement; returns a compact JWE (one line). */
export function sealToTang(plaintext: Uint8Array, url: string, adv: TangAdvertisement, opts: SealOptions = {}): string {
  const srv = adv.exchangeKey;
  const { node, bytes } = curveOf(srv);
  // clevis drops alg and key_ops before taking the thumbprint; the thumbprint ignores them anyway
  const kid = jwkThumbprint(srv, 'S256');
  const ecdh = createECDH(node);
  let iv: Buffer;
  if (opts.seed) {
    const label = `${url}\0${kid}\0${createHash('sha256').update(plaintext).digest('hex')}`;
    ecdh.setPrivateKey(scalarFrom(derive(opts.seed, `epk\0${label}`, bytes * 2), srv.crv, bytes));
    iv = derive(opts.seed, `iv\0${label}`, 12);
  } else {
    ecdh.generateKeys();
    iv = randomBytes(12);
  }
  const pub = ecdh.getPublicKey(); // 04||X||Y
  const epk: EcJwk = { kty: 'EC', crv: srv.crv, x: b64u(pub.subarray(1, 1 + bytes)), y: b64u(pub.subarray(1 + bytes)) };
  const z = ecdh.computeSecret(pointOf(srv)); // X coordinate, field-size bytes; OpenSSL checks the point is on the curve
  const cek = concatKdf(z, 'A256GCM', 256);
  const header = { alg: 'ECDH-ES', enc: 'A256GCM', clevis: { pin: 'tang', tang: { url, adv: adv.jwks } }, kid, epk };
  const protectedB64 = b64u(JSON.stringify(header));
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  cipher.setAAD(Buffer.from(protectedB64, 'ascii'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return `${protectedB64}..${b64u(iv)}.${b64u(ct)}.${b64u(cipher.getAuthTag())}`;
}

/** The protected header of a compact JWE (no secrets in it: for tests and `edgeforge` diagnostics). */
export function jweHeader(jwe: string): Record<string, unknown> {
  return JSON.parse(unb64u(jwe.split('.')[0]).toString('utf8')) as Record<string, unknown>;
}

/**
 * Open a JWE given the ECDH shared secret Z (tests only: they recover Z from the tang server's private key
 * to check the sealing independently of clevis).
 */
export function openWithSharedSecret(jwe: string, z: Uint8Array): Buffer {
  const [h, , iv, ct, tag] = jwe.split('.');
  const d = createDecipheriv('aes-256-gcm', concatKdf(z, 'A256GCM', 256), unb64u(iv));
  d.setAAD(Buffer.from(h, 'ascii'));
  d.setAuthTag(unb64u(tag));
  return Buffer.concat([d.update(unb64u(ct)), d.final()]);
}

export interface SealedFile {
  /**
   * name inside the sealed archive: a plain name ("k3s-token": linked as bundle/secrets/NAME on the device)
   * or one directory level ("flux/NAME.yaml": linked as bundle/flux/NAME.yaml)
   */
  name: string;
  bytes: Uint8Array;
  mode: number;
}

/**
 * A minimal POSIX ustar archive (the device unpacks it with `tar -x`): regular files only, owner root,
 * mtime from SOURCE_DATE_EPOCH, sorted by name, so the bytes depend on the input only.
 */
export function ustar(files: SealedFile[], mtime: number): Buffer {
  const blocks: Buffer[] = [];
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!/^([a-z0-9][a-z0-9-]{0,30}\/)?[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(f.name)) {
      throw new Error(`sealed file name "${f.name}" must be a plain file name, or DIR/NAME with one lower-case directory`);
    }
    const h = Buffer.alloc(512);
    const put = (off: number, len: number, s: string) => h.write(s, off, len, 'ascii');
    const oct = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
    put(0, 100, f.name);
    oct(100, 8, f.mode & 0o7777);
    oct(108, 8, 0);
    oct(116, 8, 0);
    oct(124, 12, f.bytes.length);
    oct(136, 12, mtime);
    put(148, 8, '        ');
    put(156, 1, '0');
    put(257, 6, 'ustar\0');
    put(263, 2, '00');
    put(265, 32, 'root');
    put(297, 32, 'root');
    let sum = 0;
    for (const b of h) sum += b;
    put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(h, Buffer.from(f.bytes), Buffer.alloc((512 - (f.bytes.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface SealTarget {
  url: string;
  adv: TangAdvertisement;
}

/**
 * The device's `sealed-secrets.jwe`: its one-time secrets as a ustar archive, sealed once per tang server
 * of the site, one compact JWE per line. The device tries the lines in order and needs any one server
 * (sss threshold 1 for these one-time secrets: they only have to survive until the first boot).
 */
export function sealSecrets(files: SealedFile[], targets: SealTarget[], sourceDateEpoch: number, opts: SealOptions = {}): string {
  if (targets.length === 0) throw new Error('sealing needs at least one tang server with a saved advertisement');
  const tar = ustar(files, sourceDateEpoch);
  return targets.map((t) => sealToTang(tar, t.url, t.adv, opts)).join('\n') + '\n';
}
