// SOPS-encrypted YAML, PGP recipients only: enough to encrypt site secrets, read them back, and
// rotate them after a revocation (new data key, re-encrypted to the remaining recipients) without
// the sops binary. The format follows sops 3.x, which Flux's kustomize-controller decrypts:
//  - each value: ENC[AES256_GCM,data:…,iv:…,tag:…,type:str|int|float|bool], AES-256-GCM with a
//    32-byte IV and the value's key path ("data:password:") as additional data;
//  - the data key (32 random bytes) encrypted to each PGP recipient separately (sops.pgp[].enc);
//  - sops.mac: SHA-512 over every value in document order, upper-case hex, encrypted like a value
//    with sops.lastmodified as additional data.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import * as openpgp from '../util/openpgp.mjs';
import { parse, stringify } from 'yaml';

export interface SopsRecipient {
  fingerprint: string;
  publicKeyArmored: string;
}

const ENC = /^ENC\[AES256_GCM,data:([^,]*),iv:([^,]+),tag:([^,]+),type:(str|int|float|bool|bytes|comment)\]$/;
export const DEFAULT_ENCRYPTED_REGEX = '^(data|stringData)$';

type Leaf = string | number | boolean;

function toBytes(v: Leaf): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return String(v);
}
function typeOf(v: Leaf): string {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  return 'str';
}

export function encryptValue(v: Leaf, key: Buffer, aad: string, iv = randomBytes(32)): string {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const data = Buffer.concat([c.update(toBytes(v), 'utf8'), c.final()]);
  return `ENC[AES256_GCM,data:${data.toString('base64')},iv:${iv.toString('base64')},tag:${c.getAuthTag().toString('base64')},type:${typeOf(v)}]`;
}

export function decryptValue(enc: string, key: Buffer, aad: string): Leaf {
  const m = ENC.exec(enc);
  if (!m) throw new Error(`not a sops value: ${enc.slice(0, 30)}`);
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(m[2], 'base64'));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(Buffer.from(m[3], 'base64'));
  const plain = Buffer.concat([d.update(Buffer.from(m[1], 'base64')), d.final()]).toString('utf8');
  switch (m[4]) {
    case 'int':
      return parseInt(plain, 10);
    case 'float':
      return parseFloat(plain);
    case 'bool':
      return plain === 'True';
    default:
      return plain;
  }
}

/** Walk leaves in document order; `encrypt` says whether a leaf sits under a key matching the regex. */
function walk(node: unknown, path: string[], under: boolean, re: RegExp, fn: (v: Leaf, path: string[], encrypted: boolean) => unknown): unknown {
  if (Array.isArray(node)) return node.map((x) => walk(x, path, under, re, fn));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'sops' && path.length === 0) continue;
      out[k] = walk(v, [...path, k], under || re.test(k), re, fn);
    }
    return out;
  }
  if (node === null || node === undefined) return node;
  return fn(node as Leaf, path, under);
}

async function encryptDataKey(key: Buffer, r: SopsRecipient, now: Date): Promise<{ created_at: string; enc: string; fp: string }> {
  const pub = await openpgp.readKey({ armoredKey: r.publicKeyArmored });
  const enc = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: key }), encryptionKeys: pub, date: now, format: 'armored' })) as string;
  return { created_at: now.toISOString().replace(/\.\d{3}Z$/, 'Z'), enc, fp: r.fingerprint.toUpperCase() };
}

export async function sopsEncrypt(plain: Record<string, unknown>, recipients: SopsRecipient[], opts: { now?: Date; encryptedRegex?: string } = {}): Promise<string> {
  const now = opts.now ?? new Date();
  const re = new RegExp(opts.encryptedRegex ?? DEFAULT_ENCRYPTED_REGEX);
  const key = randomBytes(32);
  const mac = createHash('sha512');
  const tree = walk(plain, [], false, re, (v, path, encrypted) => {
    mac.update(toBytes(v));
    return encrypted ? encryptValue(v, key, path.join(':') + ':') : v;
  }) as Record<string, unknown>;
  const lastmodified = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  tree.sops = {
    kms: null,
    gcp_kms: null,
    azure_kv: null,
    hc_vault: null,
    age: null,
    lastmodified,
    mac: encryptValue(mac.digest('hex').toUpperCase(), key, lastmodified),
    pgp: await Promise.all(recipients.map((r) => encryptDataKey(key, r, now))),
    encrypted_regex: opts.encryptedRegex ?? DEFAULT_ENCRYPTED_REGEX,
    version: '3.9.0',
  };
  return stringify(tree, { lineWidth: 0 });
}

export function isSopsDocument(text: string): boolean {
  return /^sops:\s*$/m.test(text) && text.includes('ENC[AES256_GCM');
}

export function sopsRecipients(text: string): string[] {
  const doc = parse(text) as { sops?: { pgp?: { fp: string }[] } };
  return (doc.sops?.pgp ?? []).map((p) => p.fp);
}

async function dataKey(doc: { sops: { pgp: { fp: string; enc: string }[] } }, privateKeyArmored: string): Promise<Buffer> {
  const priv = await openpgp.readPrivateKey({ armoredKey: privateKeyArmored });
  for (const entry of doc.sops.pgp ?? []) {
    try {
      const msg = await openpgp.readMessage({ armoredMessage: entry.enc });
      const { data } = await openpgp.decrypt({ message: msg, decryptionKeys: priv, format: 'binary' });
      return Buffer.from(data as Uint8Array);
    } catch {
      /* not for this key */
    }
  }
  throw new Error('none of the sops.pgp entries is encrypted to the given key');
}

export async function sopsDecrypt(text: string, privateKeyArmored: string): Promise<Record<string, unknown>> {
  const doc = parse(text) as Record<string, unknown> & { sops: { pgp: { fp: string; enc: string }[]; mac: string; lastmodified: string; encrypted_regex?: string } };
  const key = await dataKey(doc, privateKeyArmored);
  const mac = createHash('sha512');
  const re = new RegExp(doc.sops.encrypted_regex ?? DEFAULT_ENCRYPTED_REGEX);
  const plain = walk(doc, [], false, re, (v, path) => {
    const out = typeof v === 'string' && ENC.test(v) ? decryptValue(v, key, path.join(':') + ':') : v;
    mac.update(toBytes(out));
    return out;
  }) as Record<string, unknown>;
  const expected = decryptValue(doc.sops.mac, key, doc.sops.lastmodified);
  if (expected !== mac.digest('hex').toUpperCase()) throw new Error('sops MAC mismatch: the file was modified after it was encrypted');
  return plain;
}

/** After a revocation: new data key, every value re-encrypted, data key only for the remaining recipients. */
export async function sopsRotate(text: string, privateKeyArmored: string, recipients: SopsRecipient[], now = new Date()): Promise<string> {
  const doc = parse(text) as { sops: { encrypted_regex?: string } };
  const plain = await sopsDecrypt(text, privateKeyArmored);
  return sopsEncrypt(plain, recipients, { now, encryptedRegex: doc.sops.encrypted_regex });
}
