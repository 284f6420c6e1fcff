// The base image: verified against its sha256 pin, decompressed once (for .img.xz) into a sparse cache
// file, and described by its block map. The base file itself is only ever opened read-only.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Extent } from './block.ts';
import { alignExtents } from './extents.ts';
import { dataExtents } from './holes.ts';
import { tempPathFor } from '../util/atomic.ts';
import { sha256OfFile } from '../util/hash.ts';

export const BLOCK = 4096;
export const DEFAULT_CACHE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../images/cache');

export interface FileStamp {
  size: number;
  mtimeMs: number;
  ino: number;
}

export interface PreparedBase {
  /** the file the user gave (.img or .img.xz) and its pinned sha256 */
  inputPath: string;
  inputSha256: string;
  /** the raw image deltas apply to (the input itself, or the decompressed cache file) */
  rawPath: string;
  rawSha256: string;
  size: number;
  blockSize: number;
  /** data ranges of the raw image, block aligned; everything else is a hole and is never written */
  mapped: Extent[];
  /** false if holes could not be asked for and everything counts as mapped */
  mappedExact: boolean;
  /** identity of rawPath when it was hashed, so later runs can tell it has not been swapped */
  rawStamp: FileStamp;
}

export async function fileStamp(p: string): Promise<FileStamp> {
  const st = await fs.stat(p);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

export function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

export async function sha256File(p: string): Promise<string> {
  return (await sha256OfFile(p)).sha256;
}

/** `xz -dc` into a sparse file: all-zero blocks become holes (as `xz -d` itself does for regular files). */
async function decompressXz(input: string, output: string): Promise<{ sha256: string; size: number }> {
  const tmp = tempPathFor(output);
  const fh = await fs.open(tmp, 'wx', 0o644);
  const h = createHash('sha256');
  let pos = 0;
  let pending: Buffer = Buffer.alloc(0);
  const zero = Buffer.alloc(BLOCK);
  const flush = async (buf: Buffer) => {
    for (let o = 0; o < buf.length; o += BLOCK) {
      const blk = buf.subarray(o, o + BLOCK);
      if (!(blk.length === BLOCK && blk.equals(zero))) await fh.write(blk, 0, blk.length, pos + o);
    }
    pos += buf.length;
  };
  try {
    const child = spawn('xz', ['-dc', '--', input], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new Error(`cannot run xz to decompress ${input} (install xz-utils): ${e.message}`)));
      child.on('close', (code) => resolve(code ?? 1));
    });
    for await (const chunk of child.stdout) {
      h.update(chunk as Buffer);
      pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
      const whole = pending.length - (pending.length % BLOCK);
      if (whole > 0) {
        await flush(pending.subarray(0, whole));
        pending = Buffer.from(pending.subarray(whole));
      }
    }
    const code = await exited;
    if (code !== 0) throw new Error(`xz failed on ${input}: ${stderr.trim()}`);
    if (pending.length) await flush(pending);
    await fh.truncate(pos);
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, output);
    return { sha256: h.digest('hex'), size: pos };
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

const memo = new Map<string, Promise<PreparedBase>>();

export interface PrepareBaseOptions {
  path: string;
  /** the pin: sha256 of the file as given (the .xz file for .img.xz) */
  sha256: string;
  cacheDir?: string;
}

/**
 * Verifies the pin and returns the raw image to work on. Memoized per process (keyed by path, pin and file
 * identity), so personalizing thousands of devices hashes the base once.
 */
export function prepareBase(opts: PrepareBaseOptions): Promise<PreparedBase> {
  const key = JSON.stringify([path.resolve(opts.path), opts.sha256.toLowerCase(), opts.cacheDir ?? '']);
  let p = memo.get(key);
  if (!p) {
    p = prepareUncached(opts);
    memo.set(key, p);
    p.catch(() => memo.delete(key));
  }
  return p.then(async (b) => {
    // the memo must not outlive a swapped file
    if (!sameStamp(b.rawStamp, await fileStamp(b.rawPath))) {
      memo.delete(key);
      return prepareBase(opts);
    }
    return b;
  });
}

async function prepareUncached(opts: PrepareBaseOptions): Promise<PreparedBase> {
  const inputPath = path.resolve(opts.path);
  const pin = opts.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(pin)) throw new Error(`base image pin must be a sha256 (64 hex digits), got ${JSON.stringify(opts.sha256)}`);
  try {
    await fs.access(inputPath);
  } catch {
    throw new Error(`base image not found: ${inputPath}`);
  }
  const actual = await sha256File(inputPath);
  if (actual !== pin) {
    throw new Error(`base image ${inputPath} has sha256 ${actual}, but the profile pins ${pin}: download the image again, or update the pin if the new image is intended`);
  }
  let rawPath = inputPath;
  let rawSha256 = actual;
  if (inputPath.endsWith('.xz')) {
    const cacheDir = path.resolve(opts.cacheDir ?? DEFAULT_CACHE_DIR);
    await fs.mkdir(cacheDir, { recursive: true });
    rawPath = path.join(cacheDir, `${pin}.img`);
    const metaPath = `${rawPath}.json`;
    let meta: { sha256: string; stamp: FileStamp } | null = null;
    try {
      meta = JSON.parse(await fs.readFile(metaPath, 'utf8'));
      if (!meta || !sameStamp(meta.stamp, await fileStamp(rawPath))) meta = null;
    } catch {
      meta = null;
    }
    if (!meta) {
      const r = await decompressXz(inputPath, rawPath);
      meta = { sha256: r.sha256, stamp: await fileStamp(rawPath) };
      await fs.writeFile(metaPath, JSON.stringify(meta));
    }
    rawSha256 = meta.sha256;
  }
  const rawStamp = await fileStamp(rawPath);
  const dm = dataExtents(rawPath, rawStamp.size);
  return {
    inputPath,
    inputSha256: actual,
    rawPath,
    rawSha256,
    size: rawStamp.size,
    blockSize: BLOCK,
    mapped: alignExtents(dm.extents, BLOCK, rawStamp.size),
    mappedExact: dm.exact,
    rawStamp,
  };
}
