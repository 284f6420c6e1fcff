// The bundle-sums rule, once (the build writes bundle/SHA256SUMS with it, provision checks it, the device
// records its hash in applied.json "bundleSha256"):
//   SHA256SUMS  = for each bundle file sorted by its path inside the bundle (byte order):
//                 "<sha256>  <rel>\n" — sha256sum's own format, so `sha256sum -c SHA256SUMS` checks a
//                 delivered bundle with stock tools
//   bundle hash = sha256(SHA256SUMS), what the first-boot program records (`sha256sum $BUNDLE/SHA256SUMS`),
//                 so "already applied?" is one string comparison.
// Pure (render/ imports it).
import { sha256Hex } from '../util/hash.ts';

/** The name of the checksum list inside the bundle. */
export const SUMS_NAME = 'SHA256SUMS';

export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The SHA256SUMS text for a set of files (sorted by rel, byte order). */
export function bundleSums(files: readonly { rel: string; sha256: string }[]): string {
  return [...files]
    .sort((a, b) => byteOrder(a.rel, b.rel))
    .map((f) => `${f.sha256}  ${f.rel}\n`)
    .join('');
}

/** The bundle hash: sha256 of the SHA256SUMS text of these files. */
export function bundleHash(files: readonly { rel: string; sha256: string }[]): string {
  return sha256Hex(bundleSums(files));
}
