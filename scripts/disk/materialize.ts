// A full raw image for one device: the base (reflinked where the filesystem can, else a sparse copy of its
// mapped ranges) with the delta's blocks written over it, plus a .bmap beside it for bmaptool.
import { constants, promises as fs } from 'node:fs';
import { writeFileAtomic, tempPathFor } from '../util/atomic.ts';
import type { Extent } from './block.ts';
import { bmapPathFor, bmapRanges, bmapXml } from './bmap.ts';
import { decodeDelta } from './delta.ts';
import { totalLength, unionExtents } from './extents.ts';

export interface MaterialBase {
  rawPath: string;
  rawSha256: string;
  size: number;
  blockSize: number;
  mapped: Extent[];
}

export interface MaterializeOptions {
  base: MaterialBase;
  delta: Uint8Array;
  to: string;
  /** default: beside the image (disk.img -> disk.bmap) */
  bmapPath?: string;
}

export interface MaterializeResult {
  path: string;
  bmapPath: string;
  /** true when the base was cloned copy-on-write (FICLONE) instead of copied */
  reflinked: boolean;
  imageSize: number;
  mappedBytes: number;
  deltaBytes: number;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Copies only the base's mapped ranges, and within them skips all-zero blocks: the copy stays sparse. */
async function sparseCopy(base: MaterialBase, dst: string): Promise<void> {
  const src = await fs.open(base.rawPath, 'r');
  const out = await fs.open(dst, 'wx', 0o600);
  try {
    await out.truncate(base.size);
    const piece = 4 * 1024 * 1024;
    const buf = Buffer.alloc(piece);
    const bs = base.blockSize;
    for (const x of base.mapped) {
      for (let o = x.offset; o < x.offset + x.length; o += piece) {
        const n = Math.min(piece, x.offset + x.length - o);
        const { bytesRead } = await src.read(buf, 0, n, o);
        let runStart = -1;
        for (let b = 0; b < bytesRead; b += bs) {
          const data = !isZero(buf.subarray(b, Math.min(b + bs, bytesRead)));
          if (data && runStart < 0) runStart = b;
          if (!data && runStart >= 0) {
            await out.write(buf, runStart, b - runStart, o + runStart);
            runStart = -1;
          }
        }
        if (runStart >= 0) await out.write(buf, runStart, bytesRead - runStart, o + runStart);
      }
    }
    await out.sync();
  } finally {
    await src.close();
    await out.close();
  }
}

export async function materialize(opts: MaterializeOptions): Promise<MaterializeResult> {
  const d = decodeDelta(opts.delta);
  const { base } = opts;
  if (d.baseSha256 !== base.rawSha256 || d.baseSize !== base.size) {
    throw new Error(`the delta was made for base ${d.baseSha256} (${d.baseSize} bytes), not for ${base.rawPath} (${base.rawSha256}, ${base.size} bytes)`);
  }
  try {
    const st = await fs.stat(opts.to);
    if (!st.isFile()) throw new Error(`${opts.to} exists and is not a regular file: use "edgeforge flash" to write devices`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = tempPathFor(opts.to);
  let reflinked = false;
  try {
    try {
      await fs.copyFile(base.rawPath, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      reflinked = true;
    } catch {
      await fs.rm(tmp, { force: true });
      await sparseCopy(base, tmp);
    }
    const fh = await fs.open(tmp, 'r+');
    try {
      await fh.chmod(0o600); // the image carries the device's seed, secrets included
      for (let i = 0; i < d.extents.length; i++) await fh.write(d.data[i], 0, d.data[i].length, d.extents[i].offset);
      await fh.truncate(base.size);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, opts.to);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  // checksums are taken from the image as written, so bmaptool's verification checks this very file
  const mapped = unionExtents(base.mapped, d.extents, base.blockSize, base.size);
  const fh = await fs.open(opts.to, 'r');
  let ranges;
  try {
    ranges = await bmapRanges(mapped, base.blockSize, base.size, async (o, n) => {
      const b = Buffer.alloc(n);
      await fh.read(b, 0, n, o);
      return b;
    });
  } finally {
    await fh.close();
  }
  const bmapPath = opts.bmapPath ?? bmapPathFor(opts.to);
  await writeFileAtomic(bmapPath, bmapXml(base.size, base.blockSize, ranges));
  return { path: opts.to, bmapPath, reflinked, imageSize: base.size, mappedBytes: totalLength(mapped), deltaBytes: opts.delta.length };
}
