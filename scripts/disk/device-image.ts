// A device's full image as a read-only BlockDev (base + delta), without writing it anywhere: what a flasher
// streams to a card. Reads of the mapped ranges are all a flasher needs; holes read as the base's zeros.
import { promises as fs } from 'node:fs';
import { FileDev, type BlockDev, type Extent } from './block.ts';
import { decodeDelta, type Delta } from './delta.ts';
import { firstEndingAfter, unionExtents } from './extents.ts';

export class DeltaDev implements BlockDev {
  constructor(
    private readonly base: BlockDev,
    private readonly delta: Delta,
  ) {
    if (delta.baseSize !== base.size) throw new Error(`delta is for a ${delta.baseSize}-byte base, not ${base.size}`);
  }
  get size(): number {
    return this.base.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = await this.base.read(offset, length);
    const xs = this.delta.extents;
    for (let i = firstEndingAfter(xs, offset); i < xs.length && xs[i].offset < offset + length; i++) {
      const from = Math.max(offset, xs[i].offset);
      const to = Math.min(offset + length, xs[i].offset + xs[i].length);
      out.set(this.delta.data[i].subarray(from - xs[i].offset, to - xs[i].offset), from - offset);
    }
    return out;
  }
  async write(): Promise<void> {
    throw new Error('a device image view is read-only');
  }
}

export interface DeviceImage {
  dev: BlockDev;
  /** the ranges a flasher must write (base block map ∪ delta extents); everything else may be skipped */
  mapped: Extent[];
  blockSize: number;
  close(): Promise<void>;
}

/** Opens base + delta as one read-only image. The caller checks the base (see materializeDevice). */
export async function openDeviceImage(base: { rawPath: string; rawSha256: string; size: number; blockSize: number; mapped: Extent[] }, deltaBytes: Uint8Array): Promise<DeviceImage> {
  const delta = decodeDelta(deltaBytes);
  if (delta.baseSha256 !== base.rawSha256) throw new Error(`the delta was made for base ${delta.baseSha256}, not ${base.rawSha256}`);
  const fh = await fs.open(base.rawPath, 'r');
  return {
    dev: new DeltaDev(new FileDev(fh, base.size, true), delta),
    mapped: unionExtents(base.mapped, delta.extents, base.blockSize, base.size),
    blockSize: base.blockSize,
    close: () => fh.close(),
  };
}
