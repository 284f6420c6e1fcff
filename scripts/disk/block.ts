// A tiny block interface: read/write bytes at an offset. FAT, MBR and GPT code only ever talk to this,
// so the same code runs on an image file, an in-memory buffer, a partition slice or a copy-on-write overlay.
import type { FileHandle } from 'node:fs/promises';

export interface BlockDev {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
}

function checkRange(dev: { size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > dev.size) {
    throw new RangeError(`block access ${offset}+${length} outside device of ${dev.size} bytes`);
  }
}

/** A device backed by a byte array (seed images, tests). Writes mutate `bytes`. */
export class MemoryDev implements BlockDev {
  constructor(readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length);
    this.bytes.set(data, offset);
  }
}

/** A device backed by an open file. `readOnly` makes every write throw: the base image is never modified. */
export class FileDev implements BlockDev {
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly readOnly = true,
  ) {}
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break; // past EOF of a short file: zeros, like a hole
      done += bytesRead;
    }
    return buf;
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new Error('refusing to write to a read-only image (the base image is never modified)');
    checkRange(this, offset, data.length);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }
}

/** A window onto part of another device: a partition. */
export class SliceDev implements BlockDev {
  constructor(
    private readonly dev: BlockDev,
    readonly start: number,
    readonly size: number,
  ) {
    if (start < 0 || start + size > dev.size) throw new RangeError(`slice ${start}+${size} outside device of ${dev.size} bytes`);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.dev.read(this.start + offset, length);
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length);
    return this.dev.write(this.start + offset, data);
  }
}

export interface Extent {
  offset: number;
  length: number;
}

/**
 * Copy-on-write view: reads fall through to the (read-only) base, writes land in a sparse map of
 * whole blocks. The changed blocks are exactly what a per-device delta has to carry.
 */
export class OverlayDev implements BlockDev {
  private readonly blocks = new Map<number, Uint8Array>();
  constructor(
    private readonly base: BlockDev,
    readonly blockSize = 4096,
  ) {}
  get size(): number {
    return this.base.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const out = await this.base.read(offset, length);
    if (this.blocks.size === 0) return out;
    const bs = this.blockSize;
    for (let b = Math.floor(offset / bs); b * bs < offset + length; b++) {
      const blk = this.blocks.get(b);
      if (!blk) continue;
      const from = Math.max(offset, b * bs);
      const to = Math.min(offset + length, b * bs + blk.length);
      out.set(blk.subarray(from - b * bs, to - b * bs), from - offset);
    }
    return out;
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length);
    const bs = this.blockSize;
    for (let b = Math.floor(offset / bs); b * bs < offset + data.length; b++) {
      let blk = this.blocks.get(b);
      if (!blk) {
        const len = Math.min(bs, this.size - b * bs); // last block of an odd-sized image is short
        blk = await this.base.read(b * bs, len);
        this.blocks.set(b, blk);
      }
      const from = Math.max(offset, b * bs);
      const to = Math.min(offset + data.length, b * bs + blk.length);
      blk.set(data.subarray(from - offset, to - offset), from - b * bs);
    }
  }
  /** Changed blocks (bytes differ from the base, or written over a hole), merged into sorted extents. */
  /**
   * `isHole(offset, length)` marks base blocks the base never wrote (sparse holes, "don't care" for bmap
   * flashing): a block written there is kept even if it is all zeros, because on a used SD card that block
   * would otherwise keep whatever it held before (a fresh FAT's empty tables must really be written).
   */
  async changedExtents(isHole: (offset: number, length: number) => boolean = () => false): Promise<{ extents: Extent[]; data: Uint8Array[] }> {
    const ids = [...this.blocks.keys()].sort((a, b) => a - b);
    const extents: Extent[] = [];
    const parts: Uint8Array[][] = [];
    for (const b of ids) {
      const blk = this.blocks.get(b)!;
      const orig = await this.base.read(b * this.blockSize, blk.length);
      if (Buffer.compare(orig, blk) === 0 && !isHole(b * this.blockSize, blk.length)) continue; // unchanged: not in the delta
      const last = extents[extents.length - 1];
      if (last && last.offset + last.length === b * this.blockSize) {
        last.length += blk.length;
        parts[parts.length - 1].push(blk);
      } else {
        extents.push({ offset: b * this.blockSize, length: blk.length });
        parts.push([blk]);
      }
    }
    return { extents, data: parts.map((p) => (p.length === 1 ? p[0] : Buffer.concat(p))) };
  }
}
