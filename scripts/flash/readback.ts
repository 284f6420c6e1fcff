// Reading a card back for --verify without the page cache answering instead of the card.
//
// O_DIRECT wants the file offset, the length and the *memory address* aligned to the device's logical
// block size. JavaScript cannot see a Buffer's address, so we over-allocate and probe: the first offset
// into the buffer at which an O_DIRECT read succeeds is aligned (malloc gives 16-byte alignment, so at
// most 256 probes of 4 KiB). Where O_DIRECT is refused (tmpfs on old kernels, some FUSE filesystems),
// the cache is dropped with posix_fadvise(POSIX_FADV_DONTNEED) through `dd iflag=nocache count=0`
// (node has no fadvise binding) after an fdatasync, so the clean pages really go, and reads are buffered.
import { spawnSync } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export interface TargetReader {
  /** how the cache was bypassed, for the report */
  readonly method: string;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

const ALIGN = 4096;
export const MAX_READ = 4 * 1024 * 1024;

async function readFull(fh: FileHandle, buf: Buffer, length: number, offset: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Drops the file's (or device's) clean cached pages: posix_fadvise(DONTNEED) over the whole file. */
export function dropCache(path: string): boolean {
  const r = spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'], { stdio: 'ignore' });
  return r.status === 0;
}

class DirectReader implements TargetReader {
  readonly method = 'O_DIRECT';
  constructor(
    private readonly direct: FileHandle,
    private readonly buffered: FileHandle,
    private readonly buf: Buffer,
  ) {}
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset % ALIGN === 0 && length <= MAX_READ) {
      const n = Math.ceil(length / ALIGN) * ALIGN; // past the end of a file: a short read, fine
      try {
        const got = await readFull(this.direct, this.buf, n, offset);
        if (got >= length) return Buffer.from(this.buf.subarray(0, length));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      }
    }
    // an odd tail (image size not a multiple of 4 KiB on a 4Kn device): buffered, after the cache drop
    const b = Buffer.alloc(length);
    await readFull(this.buffered, b, length, offset);
    return b;
  }
  async close(): Promise<void> {
    await this.direct.close();
    await this.buffered.close();
  }
}

class BufferedReader implements TargetReader {
  constructor(
    readonly method: string,
    private readonly fh: FileHandle,
  ) {}
  async read(offset: number, length: number): Promise<Buffer> {
    const b = Buffer.alloc(length);
    await readFull(this.fh, b, length, offset);
    return b;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** An O_DIRECT reader, or null when the filesystem refuses O_DIRECT. */
export async function directReader(path: string): Promise<TargetReader | null> {
  let direct: FileHandle;
  try {
    direct = await fs.open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch {
    return null;
  }
  const big = Buffer.allocUnsafeSlow(MAX_READ + ALIGN);
  for (let o = 0; o < ALIGN; o += 16) {
    try {
      await direct.read(big, o, ALIGN, 0);
      dropCache(path); // for the rare buffered tail read
      return new DirectReader(direct, await fs.open(path, 'r'), big.subarray(o, o + MAX_READ));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') break;
    }
  }
  await direct.close();
  return null;
}

export async function cacheDropReader(path: string, method: string): Promise<TargetReader> {
  const ok = dropCache(path);
  return new BufferedReader(ok ? method : `${method} — but dd could not drop the cache: read-back may come from memory`, await fs.open(path, 'r'));
}
