// A device's registry pull credential (gitops.transport: oci): derived from its own Flux deploy key, which an
// OCI device does not otherwise use. So it is per device, needs nothing new in keys/, rotates with the deploy
// key (`keys rotate --device`), and is gone with it when the device is revoked. The registry's token issuer
// keeps only a verifier (sha256 of the password: a 256-bit random secret needs no slow hash), which the signed
// build manifest carries to `edgeforge registry config` (docs/gitops.md, "OCI transport").
import { createHash, createHmac } from 'node:crypto';

const LABEL = 'edgeforge registry pull v1';

/** The password: HMAC-SHA256 of a fixed label under the device's deploy key, base64url (43 characters). */
export function registryPullPassword(deployKeyPrivate: string): string {
  return createHmac('sha256', Buffer.from(deployKeyPrivate, 'utf8')).update(LABEL).digest('base64url');
}

/** What the token issuer stores and compares: sha256 of the password, hex. */
export function registryPullVerifier(password: string): string {
  return createHash('sha256').update(password, 'utf8').digest('hex');
}
