// Sparse files, one rule for the writer and the checker. A file of SPARSE_FROM bytes or more is written as its
// data ranges — the runs of 4 KiB blocks holding a non-zero byte — and holes elsewhere (pipeline/write.ts). The
// manifest records those ranges and the sha256 of their bytes (manifest/types.ts, `sparse`), so `verify` hashes the
// data and only checks that everything else reads as zeros: reading a hole costs the kernel a memset, hashing it
// costs SHA-256 over every zero (for 2,000 one-MiB seed images, 2 GB of them). What is compared is what a reader
// gets, never how the filesystem stores it: data written into a hole or a hole punched into data both change it.
import { createHash } from 'node:crypto';

export const SPARSE_FROM = 64 * 1024;
export const SPARSE_BLOCK = 4096;
/** [offset, length] in bytes, sorted, not touching each other */
export type DataRange = [offset: number, length: number];

const ZEROS = new Uint8Array(1 << 20);

/** true when every byte of b[from, to) is zero (memcmp against zeros, not a loop in JS) */
export function allZero(b: Uint8Array, from = 0, to = b.length): boolean {
  for (let at = from; at < to; at += ZEROS.length) {
    const end = Math.min(to, at + ZEROS.length);
    if (Buffer.compare(b.subarray(at, end), ZEROS.subarray(0, end - at)) !== 0) return false;
  }
  return true;
}

/** The data ranges of `bytes` when written sparse; undefined for a file below SPARSE_FROM (written whole). */
export function dataRanges(bytes: Uint8Array): DataRange[] | undefined {
  if (bytes.length < SPARSE_FROM) return undefined;
  const out: DataRange[] = [];
  let start = -1; // start of the current run of data blocks
  for (let off = 0; off < bytes.length; off += SPARSE_BLOCK) {
    const data = !allZero(bytes, off, Math.min(off + SPARSE_BLOCK, bytes.length));
    if (data && start < 0) start = off;
    if (!data && start >= 0) {
      out.push([start, off - start]);
      start = -1;
    }
  }
  if (start >= 0) out.push([start, bytes.length - start]);
  return out;
}

/** sha256 of the bytes of the data ranges, in order (the ranges' positions are recorded beside it) */
export function dataSha256(bytes: Uint8Array, ranges: DataRange[]): string {
  const h = createHash('sha256');
  for (const [off, len] of ranges) h.update(bytes.subarray(off, off + len));
  return h.digest('hex');
}

/** How many bytes the ranges cover. */
export function rangesLength(ranges: DataRange[]): number {
  return ranges.reduce((n, [, len]) => n + len, 0);
}

/** The gaps between sorted data ranges in a file of `size` bytes: what must read as zeros. */
export function holesOf(ranges: DataRange[], size: number): DataRange[] {
  const out: DataRange[] = [];
  let at = 0;
  for (const [off, len] of ranges) {
    if (off > at) out.push([at, off - at]);
    at = off + len;
  }
  if (at < size) out.push([at, size - at]);
  return out;
}
