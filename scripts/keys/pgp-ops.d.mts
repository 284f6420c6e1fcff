export interface GeneratedPgpKey {
  privateKeyArmored: string;
  publicKeyArmored: string;
  /** 40 hex digits, uppercase */
  fingerprint: string;
  /** ISO time the key claims to be created at (back-dated) */
  created: string;
}
export function generateV4Key(a: { name: string; email: string; date: string }): Promise<GeneratedPgpKey>;
export function encryptText(a: { text: string; recipients: string[] }): Promise<string>;
export function decryptText(a: { armored: string; privateKeyArmored: string; passphrase?: string }): Promise<string>;
export function sealBundle(a: {
  plain: Record<string, unknown>;
  pgpKeys: Record<string, { name: string; email: string }>;
  date: string;
  recipients: string[];
}): Promise<{ pgp: Record<string, GeneratedPgpKey>; armored: string }>;
export interface PgpOps {
  generateV4Key: typeof generateV4Key;
  encryptText: typeof encryptText;
  decryptText: typeof decryptText;
  sealBundle: typeof sealBundle;
}
export const ops: PgpOps;
