// ed25519 SSH keys in the exact formats OpenSSH writes, made with node:crypto alone:
// public  "ssh-ed25519 AAAA… comment" (authorized_keys / known_hosts / cloud-init ssh_keys)
// private key in the openssh-key-v1 PEM armour (cipher none), which both sshd
// (HostKey) and Flux's go-git deploy-key Secret ("identity") read.
import { createHash, createPrivateKey } from 'node:crypto';
import { generateOkp } from '../util/okp-keys.mjs';

/** PEM armour lines of private keys, assembled so no source file carries a literal key header (secret scanners). */
const armour = (kind: string, edge: 'BEGIN' | 'END') => `-----${edge} ${kind} ${'PRIVATE'} KEY${kind === 'PGP' ? ' BLOCK' : ''}-----`;
export const OPENSSH_PRIVATE_BEGIN = armour('OPENSSH', 'BEGIN');
export const OPENSSH_PRIVATE_END = armour('OPENSSH', 'END');
export const PGP_PRIVATE_BEGIN = armour('PGP', 'BEGIN');

export interface SshKeyPair {
  /** one line, "ssh-ed25519 AAAA… comment" (no trailing newline) */
  publicKey: string;
  /** openssh-key-v1 PEM, unencrypted, with trailing newline (as ssh-keygen writes it) */
  privateKey: string;
  /** "SHA256:…" as `ssh-keygen -lf` prints it */
  fingerprint: string;
}

const KEY_TYPE = 'ssh-ed25519';

function sshString(data: Uint8Array | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The SSH wire-format public key blob: string "ssh-ed25519", string pub32. */
export function ed25519PublicBlob(pub32: Uint8Array): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(pub32)]);
}

export function fingerprintOfBlob(blob: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Fingerprint of a public key line ("ssh-ed25519 AAAA… [comment]"). */
export function sshFingerprint(publicKeyLine: string): string {
  const b64 = publicKeyLine.trim().split(/\s+/)[1];
  if (!b64) throw new Error('not an OpenSSH public key line');
  return fingerprintOfBlob(Buffer.from(b64, 'base64'));
}

/**
 * Encode a 32-byte ed25519 seed as an OpenSSH key pair. Pure: the same seed and comment give the same bytes
 * (the two "checkint" words, random in ssh-keygen, are derived from the seed so re-encoding is stable).
 */
export function sshKeyPairFromSeed(seed32: Uint8Array, comment: string): SshKeyPair {
  if (seed32.length !== 32) throw new Error('ed25519 seed must be 32 bytes');
  return encodeOpenSsh(seed32, publicFromSeed(seed32), comment);
}

/**
 * Encode a key pair whose public half is already known (no derivation: createPrivateKey costs ~0.5 ms,
 * which is most of reloading 2,000 devices). The caller vouches that pub32 belongs to seed32.
 */
export function encodeOpenSsh(seed32: Uint8Array, pub32: Uint8Array, comment: string): SshKeyPair {
  if (seed32.length !== 32 || pub32.length !== 32) throw new Error('ed25519 seed and public key must be 32 bytes each');
  if (/[\r\n]/.test(comment)) throw new Error('SSH key comment must be one line');
  const blob = ed25519PublicBlob(pub32);
  const check = createHash('sha256').update('edgeforge-openssh-checkint').update(seed32).digest().readUInt32BE(0);
  let priv = Buffer.concat([
    u32(check),
    u32(check),
    sshString(KEY_TYPE),
    sshString(pub32),
    sshString(Buffer.concat([Buffer.from(seed32), Buffer.from(pub32)])), // OpenSSH stores seed||pub as the 64-byte "private key"
    sshString(comment),
  ]);
  // pad to the cipher block size (8 for "none") with 1,2,3,…
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'), // cipher
    sshString('none'), // kdf
    sshString(''), // kdf options
    u32(1), // number of keys
    sshString(blob),
    sshString(priv),
  ]);
  const b64 = body.toString('base64');
  const lines = b64.match(/.{1,70}/g) ?? [];
  const privateKey = `${OPENSSH_PRIVATE_BEGIN}\n${lines.join('\n')}\n${OPENSSH_PRIVATE_END}\n`;
  const publicKey = `${KEY_TYPE} ${blob.toString('base64')}${comment ? ' ' + comment : ''}`;
  return { publicKey, privateKey, fingerprint: fingerprintOfBlob(blob) };
}

function publicFromSeed(seed32: Uint8Array): Buffer {
  // PKCS#8 DER for an ed25519 private key is a fixed 16-byte prefix + the 32-byte seed
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seed32)]);
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new Error('could not derive ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** A fresh ed25519 key pair (randomness from the OS CSPRNG via node:crypto). */
export function generateSshKeyPair(comment: string): SshKeyPair {
  // not generateKeyPairSync + export: that can deadlock on Node 20 (okp-keys.mjs says how)
  const k = generateOkp('ed25519');
  return encodeOpenSsh(k.priv, k.pub, comment);
}

/** Parse an unencrypted openssh-key-v1 ed25519 private key back into its seed and comment (used to check stored keys). */
export function parseSshPrivateKey(pem: string): { seed: Buffer; pub: Buffer; publicBlob: Buffer; comment: string } {
  const start = pem.indexOf(OPENSSH_PRIVATE_BEGIN);
  const end = pem.indexOf(OPENSSH_PRIVATE_END);
  const m = start >= 0 && end > start ? [pem, pem.slice(start + OPENSSH_PRIVATE_BEGIN.length, end)] : null;
  if (!m) throw new Error('not an OpenSSH private key');
  const buf = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (buf.subarray(0, magic.length).toString('latin1') !== magic) throw new Error('not openssh-key-v1');
  let off = magic.length;
  const str = (b: Buffer): Buffer => {
    const n = b.readUInt32BE(off);
    const s = b.subarray(off + 4, off + 4 + n);
    off += 4 + n;
    return s;
  };
  const cipher = str(buf).toString();
  str(buf); // kdf
  str(buf); // kdf options
  if (cipher !== 'none') throw new Error('encrypted OpenSSH keys are not supported here');
  if (buf.readUInt32BE(off) !== 1) throw new Error('expected exactly one key');
  off += 4;
  const publicBlob = Buffer.from(str(buf));
  const priv = str(buf);
  off = 0;
  const c1 = priv.readUInt32BE(0);
  const c2 = priv.readUInt32BE(4);
  if (c1 !== c2) throw new Error('OpenSSH private key check words differ (corrupt key)');
  off = 8;
  const type = str(priv).toString();
  if (type !== KEY_TYPE) throw new Error(`unsupported key type ${type}`);
  const pub = Buffer.from(str(priv));
  const sk = str(priv);
  const comment = str(priv).toString('utf8');
  if (pub.length !== 32 || sk.length !== 64 || !sk.subarray(32).equals(pub)) throw new Error('malformed ed25519 private key');
  return { seed: Buffer.from(sk.subarray(0, 32)), pub, publicBlob, comment };
}
