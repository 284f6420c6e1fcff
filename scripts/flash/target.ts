// Where a card's bytes go: a regular file or a whole block device, behind one small interface so the
// fan-out engine (and tests injecting faulty cards) never care which.
import { spawnSync } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { directReader, cacheDropReader, type TargetReader } from './readback.ts';

export interface TargetSink {
  readonly path: string;
  readonly kind: 'file' | 'block';
  /** bytes the card holds; null for a regular file (it grows) */
  readonly capacity: number | null;
  /** fdatasync every N bytes (a card: bounded dirty memory, honest progress); unset = only at the end */
  readonly syncEvery?: number;
  /** before any data: a fresh sparse file of the image's size, or a card whose old partition table is wiped */
  prepare(imageSize: number, headSize: number): Promise<void>;
  write(data: Uint8Array, offset: number): Promise<void>;
  /** fdatasync: everything written so far is on the card */
  sync(): Promise<void>;
  /** a reader that does not answer from the page cache (see readback.ts) */
  reader(): Promise<TargetReader>;
  close(): Promise<void>;
}

async function writeAll(fh: FileHandle, data: Uint8Array, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    if (bytesWritten === 0) throw new Error(`short write at offset ${offset + done}`);
    done += bytesWritten;
  }
}

/** A regular file: written sparse (holes stay holes), so it equals `image materialize` for the device. */
export class FileTarget implements TargetSink {
  readonly kind = 'file' as const;
  readonly capacity = null;
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}
  static async open(path: string): Promise<FileTarget> {
    // 0600: the image carries the device's seed, secrets included
    return new FileTarget(path, await fs.open(path, constants.O_RDWR | constants.O_CREAT, 0o600));
  }
  async prepare(imageSize: number): Promise<void> {
    await this.fh.chmod(0o600);
    await this.fh.truncate(0); // stale bytes in what are holes now must read as zeros
    await this.fh.truncate(imageSize);
  }
  write(data: Uint8Array, offset: number): Promise<void> {
    return writeAll(this.fh, data, offset);
  }
  sync(): Promise<void> {
    return this.fh.datasync();
  }
  async reader(): Promise<TargetReader> {
    return (await directReader(this.path)) ?? cacheDropReader(this.path, 'regular file: O_DIRECT not supported here; page cache dropped with posix_fadvise(DONTNEED) (dd iflag=nocache)');
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** A whole card. O_EXCL on a block device makes the kernel refuse it while anything has it mounted or claimed. */
export class BlockTarget implements TargetSink {
  readonly kind = 'block' as const;
  readonly syncEvery = 64 * 1024 * 1024;
  private constructor(
    readonly path: string,
    readonly capacity: number,
    private readonly fh: FileHandle,
  ) {}
  static async open(path: string, capacity: number): Promise<BlockTarget> {
    try {
      return new BlockTarget(path, capacity, await fs.open(path, constants.O_RDWR | constants.O_EXCL));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EBUSY') throw new Error(`${path} is busy (mounted, or held by another program): unmount it first`);
      throw err;
    }
  }
  async prepare(imageSize: number, headSize: number): Promise<void> {
    // the old partition table goes first, so a card interrupted from here on never looks bootable; a stale
    // backup GPT at the card's end (bigger card than image) goes too, or firmware may "repair" from it
    const head = Math.min(headSize, this.capacity);
    await writeAll(this.fh, Buffer.alloc(head), 0);
    if (this.capacity > imageSize) {
      const tail = Math.max(imageSize, this.capacity - 1024 * 1024);
      await writeAll(this.fh, Buffer.alloc(this.capacity - tail), tail);
    }
    await this.fh.datasync();
  }
  write(data: Uint8Array, offset: number): Promise<void> {
    return writeAll(this.fh, data, offset);
  }
  sync(): Promise<void> {
    return this.fh.datasync();
  }
  async reader(): Promise<TargetReader> {
    // drop the device's buffer cache too (BLKFLSBUF), so even the buffered fallback reads the card
    spawnSync('blockdev', ['--flushbufs', this.path], { stdio: 'ignore' });
    return (await directReader(this.path)) ?? cacheDropReader(this.path, 'block device: O_DIRECT refused; buffers flushed (BLKFLSBUF) and page cache dropped (fadvise DONTNEED)');
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}
