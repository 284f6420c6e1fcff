// A device's .bmap without materializing its image (artifact kind `bmap`): ranges are the mapped set cut on a
// 1 MiB grid; a piece the delta does not touch has the base's bytes, so its sha256 is computed once per base
// and reused for every device. Only the few pieces the delta touches are hashed per device.
import { createHash } from 'node:crypto';
import type { Extent } from './block.ts';
import { bmapXml, type BmapRange } from './bmap.ts';
import { decodeDelta } from './delta.ts';
import { isUnmapped, unionExtents } from './extents.ts';
import { openDeviceImage } from './device-image.ts';

const CELL = 1024 * 1024;

interface BmapBase {
  rawPath: string;
  rawSha256: string;
  size: number;
  blockSize: number;
  mapped: Extent[];
}

/** Cuts extents at every multiple of CELL. */
function pieces(xs: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const x of xs) {
    for (let o = x.offset; o < x.offset + x.length;) {
      const end = Math.min(x.offset + x.length, (Math.floor(o / CELL) + 1) * CELL);
      out.push({ offset: o, length: end - o });
      o = end;
    }
  }
  return out;
}

const baseHashes = new Map<string, Map<number, string>>(); // raw sha256 -> piece offset -> sha256

export async function deviceBmap(base: BmapBase, deltaBytes: Uint8Array): Promise<string> {
  const delta = decodeDelta(deltaBytes);
  const img = await openDeviceImage(base, deltaBytes);
  let cache = baseHashes.get(base.rawSha256);
  if (!cache) baseHashes.set(base.rawSha256, (cache = new Map()));
  try {
    const ranges: BmapRange[] = [];
    for (const p of pieces(unionExtents(base.mapped, delta.extents, base.blockSize, base.size))) {
      const end = Math.min(base.size, p.offset + p.length);
      const touched = !isUnmapped(delta.extents, p.offset, p.length);
      // a piece whose bounds differ from the base's (the delta extended a mapped range) is never cached
      const baseShaped = !touched && !isUnmapped(base.mapped, p.offset, p.length);
      let sha = baseShaped ? cache.get(p.offset) : undefined;
      if (!sha) {
        sha = createHash('sha256')
          .update(await img.dev.read(p.offset, end - p.offset))
          .digest('hex');
        if (baseShaped) cache.set(p.offset, sha);
      }
      ranges.push({ first: p.offset / base.blockSize, last: Math.ceil(end / base.blockSize) - 1, sha256: sha });
    }
    return bmapXml(base.size, base.blockSize, ranges);
  } finally {
    await img.close();
  }
}
