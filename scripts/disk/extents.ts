// Sorted, merged byte ranges aligned to a block size: the shape of block maps and delta extents.
import type { Extent } from './block.ts';

export function alignExtents(xs: Extent[], blockSize: number, size: number): Extent[] {
  const out: Extent[] = [];
  const sorted = [...xs].sort((a, b) => a.offset - b.offset);
  for (const x of sorted) {
    if (x.length <= 0) continue;
    const start = Math.floor(x.offset / blockSize) * blockSize;
    const end = Math.min(size, Math.ceil((x.offset + x.length) / blockSize) * blockSize);
    const last = out[out.length - 1];
    if (last && start <= last.offset + last.length) last.length = Math.max(last.length, end - last.offset);
    else out.push({ offset: start, length: end - start });
  }
  return out;
}

export function unionExtents(a: Extent[], b: Extent[], blockSize: number, size: number): Extent[] {
  return alignExtents([...a, ...b], blockSize, size);
}

/** Index of the first of sorted, non-overlapping extents that ends after `at` (binary search). */
export function firstEndingAfter(xs: Extent[], at: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid].offset + xs[mid].length <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** True when [offset, offset+length) touches no mapped extent (binary search over sorted extents). */
export function isUnmapped(mapped: Extent[], offset: number, length: number): boolean {
  const i = firstEndingAfter(mapped, offset);
  return i >= mapped.length || mapped[i].offset >= offset + length;
}

export function totalLength(xs: Extent[]): number {
  return xs.reduce((n, x) => n + x.length, 0);
}
