// Range arithmetic for the flasher: what each card gets written, and the aligned windows the shared source
// reads the base in. Pure functions over sorted, non-overlapping byte ranges.
import type { Extent } from '../disk/block.ts';
import { firstEndingAfter } from '../disk/extents.ts';

export type Range = Extent;

/** The parts of sorted ranges `xs` inside [lo, hi). */
export function clip(xs: Range[], lo: number, hi: number): Range[] {
  const out: Range[] = [];
  let i = firstEndingAfter(xs, lo);
  for (; i < xs.length && xs[i].offset < hi; i++) {
    const s = Math.max(lo, xs[i].offset);
    const e = Math.min(hi, xs[i].offset + xs[i].length);
    if (e > s) out.push({ offset: s, length: e - s });
  }
  return out;
}

export interface Window {
  index: number;
  /** the aligned chunk this window lies in: [start, start + chunk) */
  start: number;
  /** what the source reads: from the first to the last byte any card needs in this chunk */
  readOffset: number;
  readLength: number;
  /** the needed bytes inside [readOffset, +readLength): what is actually read; the holes between them are not */
  pieces: Range[];
}

/**
 * One window per aligned chunk that holds any byte some card needs; chunks of pure hole are skipped. A window
 * lists its pieces: a sparse root fs scatters small files across a chunk, and reading the holes between them
 * would cost as much as reading data (the kernel zero-fills every page).
 */
export function windowsOf(union: Range[], chunk: number): Window[] {
  const out: Window[] = [];
  for (const x of union) {
    for (let o = x.offset; o < x.offset + x.length;) {
      const start = Math.floor(o / chunk) * chunk;
      const end = Math.min(x.offset + x.length, start + chunk);
      const last = out[out.length - 1];
      if (last && last.start === start) {
        last.readLength = end - last.readOffset;
        last.pieces.push({ offset: o, length: end - o });
      } else out.push({ index: out.length, start, readOffset: o, readLength: end - o, pieces: [{ offset: o, length: end - o }] });
      o = end;
    }
  }
  return out;
}

/** Sorted ranges split at a boundary: [below, at-or-above]. */
export function splitAt(xs: Range[], at: number): [Range[], Range[]] {
  const lo: Range[] = [];
  const hi: Range[] = [];
  for (const x of xs) {
    if (x.offset + x.length <= at) lo.push(x);
    else if (x.offset >= at) hi.push(x);
    else {
      lo.push({ offset: x.offset, length: at - x.offset });
      hi.push({ offset: at, length: x.offset + x.length - at });
    }
  }
  return [lo, hi];
}
