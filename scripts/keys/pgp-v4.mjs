// OpenPGP v4 key generation with node:crypto, writing the packets directly (RFC 4880 + RFC 6637 + the
// "legacy" EdDSA/Curve25519 encodings GnuPG 2.2 uses). Why not openpgp.generateKey: it costs ~6-15 ms per
// key here (async WebCrypto per operation, imports, streams), this ~0.5 ms, and a fleet needs thousands.
// The result is read back by openpgp.js (self-signatures and key parameters validated) and imported by real gpg
// in test/keys. Plain JavaScript for the same reason as pgp-ops.mjs (runs inside worker threads).
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { generateOkp } from '../util/okp-keys.mjs';
import * as openpgp from '../util/openpgp.mjs';

const ED25519_OID = Buffer.from('2b06010401da470f01', 'hex'); // 1.3.6.1.4.1.11591.15.1
const CV25519_OID = Buffer.from('2b060104019755010501', 'hex'); // 1.3.6.1.4.1.3029.1.5.1
const ALGO_EDDSA_LEGACY = 22;
const ALGO_ECDH = 18;
const HASH_SHA512 = 10;

const u16 = (n) => Buffer.from([(n >>> 8) & 0xff, n & 0xff]);
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** Multiprecision integer: 2-byte bit count, then the big-endian bytes without leading zeros. */
function mpi(bytes) {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = Buffer.from(bytes.subarray(i));
  const bits = (v.length - 1) * 8 + (v[0] === 0 ? 0 : 32 - Math.clz32(v[0]));
  return Buffer.concat([u16(bits), v]);
}

/** New-format packet header (tag, length) + body. */
function packet(tag, body) {
  const n = body.length;
  let len;
  if (n < 192) len = Buffer.from([n]);
  else if (n < 8384) len = Buffer.from([((n - 192) >> 8) + 192, (n - 192) & 0xff]);
  else len = Buffer.concat([Buffer.from([0xff]), u32(n)]);
  return Buffer.concat([Buffer.from([0xc0 | tag]), len, body]);
}

function subpacket(type, data) {
  const body = Buffer.concat([Buffer.from([type]), Buffer.from(data)]);
  if (body.length >= 192) throw new Error('subpacket too long');
  return Buffer.concat([Buffer.from([body.length]), body]);
}

function checksum(buf) {
  let s = 0;
  for (const b of buf) s = (s + b) & 0xffff;
  return u16(s);
}

/** v4 signature packet by an Ed25519 key (EdDSA legacy: the signature is over the digest). */
function signaturePacket(type, signer, hashedSubs, unhashedSubs, signedPrefix) {
  const hashed = Buffer.concat(hashedSubs);
  const head = Buffer.concat([Buffer.from([4, type, ALGO_EDDSA_LEGACY, HASH_SHA512]), u16(hashed.length), hashed]);
  const trailer = Buffer.concat([Buffer.from([0x04, 0xff]), u32(head.length)]);
  const digest = createHash('sha512').update(signedPrefix).update(head).update(trailer).digest();
  const sig = sign(null, digest, signer);
  const unhashed = Buffer.concat(unhashedSubs);
  return packet(2, Buffer.concat([head, u16(unhashed.length), unhashed, digest.subarray(0, 2), mpi(sig.subarray(0, 32)), mpi(sig.subarray(32))]));
}

const keyHashPrefix = (pubBody) => Buffer.concat([Buffer.from([0x99]), u16(pubBody.length), pubBody]);

/**
 * A v4 key: ed25519 primary (certify + sign), cv25519 ECDH subkey (encrypt), one user ID, no passphrase,
 * created at `date` (every signature too). Same shape as pgp-ops generateV4Key.
 * @param {{name: string, email: string, date: string}} a
 */
export function fastGenerateV4Key(a) {
  const created = Math.floor(new Date(a.date).getTime() / 1000);
  if (!Number.isFinite(created) || created < 0) throw new Error(`bad key date ${a.date}`);
  const t = u32(created);

  // a seed with a leading zero byte would be a shorter MPI; old GnuPG releases mishandled those, so skip them
  // (generateOkp, not generateKeyPairSync + export('jwk'): that can deadlock on Node 20, see okp-keys.mjs)
  let ed, edSeed, edPub;
  do {
    ed = generateOkp('ed25519');
    edSeed = ed.priv;
    edPub = ed.pub;
  } while (edSeed[0] === 0);
  const edKey = createPrivateKey({ key: ed.pkcs8, format: 'der', type: 'pkcs8' });
  const x = generateOkp('x25519');
  const xPub = x.pub;
  // legacy Curve25519 secret: the native little-endian scalar, clamped, stored big-endian (reversed)
  const xSecret = Buffer.from(x.priv).reverse();
  xSecret[0] = (xSecret[0] & 127) | 64;
  xSecret[31] &= 248;

  const pubBody = Buffer.concat([Buffer.from([4]), t, Buffer.from([ALGO_EDDSA_LEGACY, ED25519_OID.length]), ED25519_OID, mpi(Buffer.concat([Buffer.from([0x40]), edPub]))]);
  const subPubBody = Buffer.concat([
    Buffer.from([4]),
    t,
    Buffer.from([ALGO_ECDH, CV25519_OID.length]),
    CV25519_OID,
    mpi(Buffer.concat([Buffer.from([0x40]), xPub])),
    Buffer.from([3, 1, 8, 7]), // KDF parameters: SHA-256, AES-128 (what gpg and openpgp.js use for cv25519)
  ]);
  const fpr = createHash('sha1').update(keyHashPrefix(pubBody)).digest();
  const keyId = fpr.subarray(12);
  const uid = Buffer.from(`${a.name} <${a.email}>`, 'utf8');

  const certSig = signaturePacket(
    0x13, // positive certification of the user ID
    edKey,
    [
      subpacket(2, t), // signature creation time
      subpacket(27, [0x03]), // key flags: certify, sign
      subpacket(11, [9, 7]), // preferred ciphers: AES-256, AES-128
      subpacket(21, [10, 8]), // preferred hashes: SHA-512, SHA-256 (nothing gpg 2.2 warns about)
      subpacket(22, [0, 2, 1]), // compression: none, zlib, zip
      subpacket(30, [0x01]), // features: modification detection (SEIPD v1)
      subpacket(25, [1]), // primary user ID
      subpacket(33, Buffer.concat([Buffer.from([4]), fpr])), // issuer fingerprint
    ],
    [subpacket(16, keyId)],
    Buffer.concat([keyHashPrefix(pubBody), Buffer.from([0xb4]), u32(uid.length), uid]),
  );
  const bindSig = signaturePacket(
    0x18, // subkey binding
    edKey,
    [subpacket(2, t), subpacket(27, [0x0c]), subpacket(33, Buffer.concat([Buffer.from([4]), fpr]))],
    [subpacket(16, keyId)],
    Buffer.concat([keyHashPrefix(pubBody), keyHashPrefix(subPubBody)]),
  );

  const edSecret = mpi(edSeed);
  const xSecretMpi = mpi(xSecret);
  const secBody = Buffer.concat([pubBody, Buffer.from([0]), edSecret, checksum(edSecret)]);
  const subSecBody = Buffer.concat([subPubBody, Buffer.from([0]), xSecretMpi, checksum(xSecretMpi)]);

  const uidPacket = packet(13, uid);
  const publicBytes = Buffer.concat([packet(6, pubBody), uidPacket, certSig, packet(14, subPubBody), bindSig]);
  const privateBytes = Buffer.concat([packet(5, secBody), uidPacket, certSig, packet(7, subSecBody), bindSig]);
  return {
    privateKeyArmored: openpgp.armor(openpgp.enums.armor.privateKey, privateBytes, undefined, undefined, undefined, true),
    publicKeyArmored: openpgp.armor(openpgp.enums.armor.publicKey, publicBytes, undefined, undefined, undefined, true),
    fingerprint: fpr.toString('hex').toUpperCase(),
    created: new Date(created * 1000).toISOString(),
  };
}
