// OpenPGP operations that dominate key generation and loading. Plain JavaScript (not TypeScript) on purpose:
// the same module runs in the main thread and inside worker_threads, and a worker must not depend on the
// tsx loader being registered in it. Types: pgp-ops.d.mts.
import { createHash, randomBytes } from 'node:crypto';
import * as openpgp from '../util/openpgp.mjs';
import { fastGenerateV4Key } from './pgp-v4.mjs';

// v4 keys only: Flux imports SOPS keys with the gpg binary, and GnuPG 2.2 (Debian bookworm) rejects v6 /
// RFC 9580 keys. ed25519Legacy primary (sign/certify) + curve25519Legacy ECDH subkey is what gpg calls
// "ed25519 / cv25519". No AEAD (SEIPDv2) either: gpg 2.2 cannot read it.
const V4 = { v6Keys: false, aeadProtect: false };

/**
 * A v4 key pair (see pgp-v4.mjs, which writes the packets with node:crypto: ~10x faster than
 * openpgp.generateKey). Async to keep one signature for every op the pool runs.
 * @param {{name: string, email: string, date: string}} a
 */
export async function generateV4Key(a) {
  return fastGenerateV4Key(a);
}

const recipientCache = new Map();
async function recipients(armoredList) {
  const cacheKey = armoredList.join('\n');
  let keys = recipientCache.get(cacheKey);
  if (!keys) {
    keys = [];
    for (const a of armoredList) keys.push(...(await openpgp.readKeys({ armoredKeys: a })));
    recipientCache.set(cacheKey, keys);
  }
  return keys;
}

// One session key per recipient set per thread, reused for every file this run writes: each file is still a
// complete OpenPGP message (the same public-key-encrypted session key packets, then its own SEIPD packet with a
// fresh random prefix, so CFB never repeats), any admin can `gpg --decrypt` it alone, and the per-file cost is
// symmetric only. Readers decrypt each distinct session key once (sessionKeyCache).
const sealCache = new Map();
async function sealerFor(armoredList) {
  const cacheKey = armoredList.join('\n');
  let sealer = sealCache.get(cacheKey);
  if (!sealer) {
    const keys = await recipients(armoredList);
    if (keys.length === 0) throw new Error('no recipients to encrypt to');
    const sessionKey = { data: new Uint8Array(randomBytes(32)), algorithm: 'aes256' };
    const template = await openpgp.encrypt({
      message: await openpgp.createMessage({ text: '' }),
      encryptionKeys: keys,
      sessionKey,
      format: 'binary',
      config: V4,
    });
    const parsed = await openpgp.readMessage({ binaryMessage: template });
    const pkesks = [...parsed.packets.filterByTag(openpgp.enums.packet.publicKeyEncryptedSessionKey)];
    if (pkesks.length !== keys.length) throw new Error('could not encrypt the session key to every admin recipient');
    sealer = { sessionKey, pkesks };
    sealCache.set(cacheKey, sealer);
  }
  return sealer;
}

/** Encrypt text to every recipient (armored public keys); any one of their private keys decrypts it, as with SOPS. */
export async function encryptText(a) {
  const { sessionKey, pkesks } = await sealerFor(a.recipients);
  const message = await openpgp.createMessage({ text: a.text });
  const encrypted = await message.encrypt([], [], sessionKey, false, [], undefined, [], { ...openpgp.config, ...V4 });
  const packets = new openpgp.PacketList();
  for (const p of pkesks) packets.push(p);
  for (const p of encrypted.packets) packets.push(p);
  return new openpgp.Message(packets).armor();
}

const decryptionKeyCache = new Map();
async function decryptionKey(armored, passphrase) {
  let key = decryptionKeyCache.get(armored);
  if (!key) {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
    if (!key.isDecrypted()) {
      if (!passphrase) throw new Error('the admin private key is passphrase-protected: set EDGEFORGE_ADMIN_KEY_PASSPHRASE');
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    }
    decryptionKeyCache.set(armored, key);
  }
  return key;
}

const sessionKeyCache = new Map();

/** @param {{armored: string, privateKeyArmored: string, passphrase?: string}} a */
export async function decryptText(a) {
  const key = await decryptionKey(a.privateKeyArmored, a.passphrase);
  const message = await openpgp.readMessage({ armoredMessage: a.armored });
  const pkesks = message.packets.filterByTag(openpgp.enums.packet.publicKeyEncryptedSessionKey);
  const h = createHash('sha256').update(a.privateKeyArmored);
  for (const p of pkesks) h.update(p.write());
  const id = h.digest('hex');
  let sessionKeys = sessionKeyCache.get(id);
  if (!sessionKeys) {
    sessionKeys = await openpgp.decryptSessionKeys({ message, decryptionKeys: key });
    sessionKeyCache.set(id, sessionKeys);
  }
  const { data } = await openpgp.decrypt({ message, sessionKeys, format: 'utf8' });
  return data;
}

/**
 * Generate the OpenPGP keys a bundle needs, put them (private and public parts) into it, and encrypt the bundle as JSON
 * to the recipients — one call per device, so a worker does all the slow work of a device in one round trip.
 * @param {{plain: Record<string, unknown>, pgpKeys: Record<string, {name: string, email: string}>, date: string, recipients: string[]}} a
 */
export async function sealBundle(a) {
  const plain = { ...a.plain };
  const pgp = {};
  for (const [field, uid] of Object.entries(a.pgpKeys)) {
    const k = await generateV4Key({ ...uid, date: a.date });
    plain[field] = k;
    pgp[field] = k;
  }
  const armored = await encryptText({ text: JSON.stringify(plain), recipients: a.recipients });
  return { pgp, armored };
}

export const ops = { generateV4Key, encryptText, decryptText, sealBundle };
