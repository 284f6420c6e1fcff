// What the fleet base and the A/B base share: an image derived from the user's base image, cached in the build's
// output by a key of everything it is made from, with a side-car (JSON) that vouches for it while the file is
// unchanged. Each is GBs, mostly holes: written once, then reused until its key changes.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileStamp, sameStamp, type FileStamp, type PreparedBase } from './base.ts';
import { alignExtents } from './extents.ts';
import { dataExtents } from './holes.ts';
import { tempPathFor } from '../util/atomic.ts';
import { sha256OfFile } from '../util/hash.ts';

/** The side-car's part every derived image has: its digest, size, the stamp it was hashed at and its data ranges. */
export interface WrittenImage {
  sha256: string;
  size: number;
  stamp: FileStamp;
  mappedExact: boolean;
  mapped: [number, number][];
}

/** The side-car at `p` when it is of `format`, made for `key`, and the image is the file it was hashed as; else null. */
export async function readSideCar<T extends WrittenImage & { format: string; key: string }>(p: string, format: string, key: string, imgPath: string): Promise<T | null> {
  try {
    const s = JSON.parse(await fs.readFile(p, 'utf8')) as T;
    if (s.format !== format || s.key !== key) return null;
    return sameStamp(s.stamp, await fileStamp(imgPath)) ? s : null;
  } catch {
    return null;
  }
}

/**
 * Writes `imgPath` through a temporary file that `fill` writes (a killed run leaves no half image under the
 * name), then hashes it and maps its data ranges (aligned to the base's block size) for the deltas.
 */
export async function writeDerivedImage(imgPath: string, blockSize: number, fill: (fh: FileHandle) => Promise<void>): Promise<WrittenImage> {
  const tmp = tempPathFor(imgPath);
  const fh = await fs.open(tmp, 'wx+', 0o644);
  try {
    await fill(fh);
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const hashed = await sha256OfFile(tmp);
  await fs.rename(tmp, imgPath);
  const stamp = await fileStamp(imgPath);
  const dm = dataExtents(imgPath, stamp.size);
  const mapped = alignExtents(dm.extents, blockSize, stamp.size);
  return { sha256: hashed.sha256, size: stamp.size, stamp, mappedExact: dm.exact, mapped: mapped.map((x) => [x.offset, x.length]) };
}

/** Removes the other `<prefix>-<16 hex>.img/.json` of `dir` once `keep` is in place (an earlier base: GBs). */
export async function removeOtherImages(dir: string, prefix: string, keep: string): Promise<void> {
  const re = new RegExp(`^${prefix}-[0-9a-f]{16}\\.(img|json)$`);
  for (const f of await fs.readdir(dir)) {
    if (re.test(f) && !f.startsWith(`${keep}.`)) await fs.rm(path.join(dir, f), { force: true });
  }
}

/** The derived image as the next stage takes a base: inputPath/inputSha256 stay the user's image, raw* is this one. */
export function preparedFrom(base: PreparedBase, imgPath: string, s: WrittenImage): PreparedBase {
  return {
    inputPath: base.inputPath,
    inputSha256: base.inputSha256,
    rawPath: imgPath,
    rawSha256: s.sha256,
    size: s.size,
    blockSize: base.blockSize,
    mapped: s.mapped.map(([offset, length]) => ({ offset, length })),
    mappedExact: s.mappedExact,
    rawStamp: s.stamp,
  };
}
