// Detached OpenPGP signatures by the fleet's build key (manifest.json.asc), and their verification
// against a pinned fingerprint — never against whatever key happens to sit beside the signature.
import * as openpgp from '../util/openpgp.mjs';

/** Normalise a fingerprint as users paste it: spaces/colons removed, uppercase hex. */
export function normalizeFingerprint(fpr: string): string {
  return fpr.replace(/[\s:]/g, '').toUpperCase();
}

/**
 * Armored detached signature over `data`. Deterministic: EdDSA signatures are, once openpgp.js's random salt
 * notation is turned off, and the signature time is the given date (SOURCE_DATE_EPOCH), so the same
 * manifest and key give the same signature bytes. The time is clamped to the key's creation time:
 * a signature older than its key is invalid to gpg.
 */
export async function signDetachedWith(privateKey: openpgp.PrivateKey, data: Uint8Array, date?: Date): Promise<string> {
  const created = privateKey.getCreationTime();
  const when = date && date.getTime() >= created.getTime() ? date : created;
  return openpgp.sign({
    message: await openpgp.createMessage({ binary: data }),
    signingKeys: privateKey,
    detached: true,
    format: 'armored',
    date: when,
    config: { nonDeterministicSignaturesViaNotation: false },
  });
}

export interface VerifyResult {
  ok: boolean;
  /** fingerprint of the key that made the signature, when it could be identified */
  signerFingerprint?: string;
  /** signature creation time */
  signedAt?: string;
  error?: string;
}

/**
 * Verify a detached armored signature over `data` with `publicKeyArmored`, accepting it only if that key's
 * fingerprint equals `pinnedFingerprint`. Never throws for a bad signature; returns ok:false and why.
 */
export async function verifyDetached(data: Uint8Array, signatureArmored: string, pinnedFingerprint: string, publicKeyArmored: string): Promise<VerifyResult> {
  const pinned = normalizeFingerprint(pinnedFingerprint);
  if (!/^[0-9A-F]{40}$|^[0-9A-F]{64}$/.test(pinned)) return { ok: false, error: `pinned fingerprint "${pinnedFingerprint}" is not a 40/64-digit hex fingerprint` };
  let keys: openpgp.Key[];
  try {
    keys = await openpgp.readKeys({ armoredKeys: publicKeyArmored });
  } catch (err) {
    return { ok: false, error: `cannot read signing public key: ${(err as Error).message}` };
  }
  const key = keys.find((k) => k.getFingerprint().toUpperCase() === pinned);
  if (!key) {
    return { ok: false, error: `the signing public key (${keys.map((k) => k.getFingerprint().toUpperCase()).join(', ')}) is not the pinned key ${pinned}` };
  }
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature: signatureArmored });
  } catch (err) {
    return { ok: false, error: `signature is not a readable OpenPGP signature: ${(err as Error).message}` };
  }
  try {
    const res = await openpgp.verify({
      message: await openpgp.createMessage({ binary: data }),
      signature,
      verificationKeys: key,
      expectSigned: true, // throws unless a signature verifies with one of verificationKeys
      format: 'binary',
    });
    const sig = res.signatures[0];
    await sig.verified;
    const packet = (await sig.signature).packets[0];
    return { ok: true, signerFingerprint: pinned, signedAt: packet?.created?.toISOString() };
  } catch (err) {
    return { ok: false, error: `signature does not verify with the pinned key ${pinned}: ${(err as Error).message}` };
  }
}
