// The fan-out: one source reads the base image ONCE, in aligned windows, and hands each window to every
// card's writer through a bounded per-card queue. Each writer overlays its own device's delta and writes
// only the mapped ranges. A card that falls a whole queue behind while another card is waiting for data
// is cut loose: it reads the base on its own from there (extra base reads, page-cache-hot), so the slowest
// card stalls the others by at most its queue. A failing card leaves the fan-out; the others go on.
//
// Order on every card: body (everything past the first MiB), fdatasync, then the first MiB (partition
// table, boot sector), fdatasync, then --verify. A card pulled out early has no valid partition table.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Delta } from '../disk/delta.ts';
import type { Extent } from '../disk/block.ts';
import { alignExtents, totalLength, unionExtents } from '../disk/extents.ts';
import { firstEndingAfter } from '../disk/extents.ts';
import { clip, splitAt, windowsOf, type Range, type Window } from './ranges.ts';
import type { TargetSink } from './target.ts';
import { MAX_READ } from './readback.ts';

export const CHUNK = 4 * 1024 * 1024;
export const HEAD = 1024 * 1024;

export interface FlashBase {
  path: string;
  size: number;
  blockSize: number;
  /** data ranges of the base, block aligned; holes are never written */
  mapped: Extent[];
}

export interface FlashJob {
  id: string;
  target: TargetSink;
  /** the device's delta (null: the plain base) */
  delta: Delta | null;
}

export type FlashPhase = 'preflight' | 'prepare' | 'write' | 'sync' | 'head' | 'verify' | 'done';

export interface FlashProgress {
  phase: FlashPhase;
  bytesDone: number;
  bytesTotal: number;
}

export interface EngineOptions {
  verify?: boolean;
  chunkSize?: number;
  headSize?: number;
  /** windows a card may be behind the source before it is cut loose (the bounded buffer) */
  queueDepth?: number;
  /** let a lagging card read the base on its own (default true) */
  detach?: boolean;
  /** how long, in total, a card may keep another card starving before it is cut loose (default 2000 ms) */
  detachAfterMs?: number;
  /** fdatasync every N bytes written (block devices: keeps dirty memory and the progress honest); 0 = at the end only */
  syncEvery?: number;
  progress?: (id: string, p: FlashProgress) => void;
}

export interface JobResult {
  id: string;
  status: 'ok' | 'failed';
  phase: FlashPhase;
  message: string;
  bytesWritten: number;
  /** bytes of the base this card read on its own after being cut loose */
  ownBaseReads: number;
  verifyMethod?: string;
  /** the first byte that read back wrong */
  mismatchOffset?: number;
}

export interface EngineResult {
  results: JobResult[];
  /** bytes the shared source read from the base */
  sharedBaseReads: number;
}

interface Chunk {
  index: number;
  data: Buffer; // bytes [window.readOffset, +readLength) of the base; shared, never modified
  hashes: Map<string, string>; // sha256 of untouched pieces, shared by every card
  /** holders of `data`: the source while it hands the chunk out, and each card it was given to */
  refs: number;
  backing?: Buffer;
  pool: BufferPool;
}

/**
 * Window buffers, reused. A fresh 4 MiB allocation per window costs a page fault per 4 KiB on first touch:
 * reading 348 MiB into fresh buffers took 600 ms here, into reused ones 50 ms — more than the whole write.
 * A buffer goes back only once every holder of its chunk has released it.
 */
class BufferPool {
  private free: Buffer[] = [];
  constructor(
    private readonly size: number,
    private readonly keep: number,
  ) {}
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }
  give(b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b);
  }
}

function release(c: Chunk): void {
  if (--c.refs === 0 && c.backing) {
    c.pool.give(c.backing);
    c.backing = undefined;
  }
}

interface Written {
  offset: number;
  length: number;
  sha256: string;
}

class Signal {
  private waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  fire(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

async function readBase(fh: FileHandle, w: Pick<Window, 'readOffset' | 'readLength' | 'pieces'>, into?: Buffer): Promise<Buffer> {
  const buf = into && into.length >= w.readLength ? into.subarray(0, w.readLength) : Buffer.allocUnsafe(w.readLength);
  let at = w.readOffset;
  for (const p of w.pieces) {
    // between pieces: bytes no card is given (holes); zeroed rather than read, so nothing stale is ever in buf
    if (p.offset > at) buf.fill(0, at - w.readOffset, p.offset - w.readOffset);
    let done = 0;
    while (done < p.length) {
      const { bytesRead } = await fh.read(buf, p.offset - w.readOffset + done, p.length - done, p.offset + done);
      if (bytesRead === 0) {
        buf.fill(0, p.offset - w.readOffset + done, p.offset - w.readOffset + p.length); // a short base file reads as zeros past its end, like a hole
        break;
      }
      done += bytesRead;
    }
    at = p.offset + p.length;
  }
  if (at < w.readOffset + w.readLength) buf.fill(0, at - w.readOffset);
  return buf;
}

const pieceBytes = (w: Window): number => w.pieces.reduce((n, p) => n + p.length, 0);

/** Writes the delta's bytes that fall in [at, at + buf.length) into buf. */
function overlay(delta: Delta, buf: Buffer, at: number): void {
  const xs = delta.extents;
  for (let i = firstEndingAfter(xs, at); i < xs.length && xs[i].offset < at + buf.length; i++) {
    const from = Math.max(at, xs[i].offset);
    const to = Math.min(at + buf.length, xs[i].offset + xs[i].length);
    buf.set(delta.data[i].subarray(from - xs[i].offset, to - xs[i].offset), from - at);
  }
}

function touches(delta: Delta | null, offset: number, length: number): boolean {
  if (!delta) return false;
  const i = firstEndingAfter(delta.extents, offset);
  return i < delta.extents.length && delta.extents[i].offset < offset + length;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

class Writer {
  readonly queue: Chunk[] = [];
  attached = true;
  waiting = false;
  finished = false;
  failed = false;
  private arrived = new Signal();
  private sourceDone = false;
  phase: FlashPhase = 'prepare';
  bytesDone = 0;
  readonly bytesTotal: number;
  private readonly body: Range[];
  private readonly head: Range[];
  private headBytes: { offset: number; data: Buffer; sha256?: string }[] = [];
  private written: Written[] = [];
  private sinceSync = 0;
  ownBaseReads = 0;
  /** time the source spent blocked on this card while another card starved */
  heldOthersMs = 0;
  private ownFh?: FileHandle;
  result?: JobResult;

  constructor(
    readonly job: FlashJob,
    private readonly base: FlashBase,
    private readonly windows: Window[],
    private readonly o: Required<Omit<EngineOptions, 'progress'>> & Pick<EngineOptions, 'progress'>,
    private readonly tick: Signal,
    private readonly pool: BufferPool,
  ) {
    const ranges = job.delta ? unionExtents(base.mapped, job.delta.extents, base.blockSize, base.size) : alignExtents(base.mapped, base.blockSize, base.size);
    this.bytesTotal = totalLength(ranges);
    [this.head, this.body] = splitAt(ranges, Math.min(o.headSize, base.size));
  }

  push(c: Chunk): void {
    this.queue.push(c);
    this.arrived.fire();
  }
  end(): void {
    this.sourceDone = true;
    this.arrived.fire();
  }
  detach(): void {
    this.attached = false;
    this.arrived.fire();
  }

  private async next(i: number): Promise<Chunk> {
    for (;;) {
      const c = this.queue.shift();
      if (c) {
        this.tick.fire();
        if (c.index !== i) throw new Error(`internal: window ${c.index} arrived, expected ${i}`);
        return c;
      }
      if (!this.attached || this.sourceDone) {
        // cut loose (or the source stopped early): read the base on our own
        this.ownFh ??= await fs.open(this.base.path, 'r');
        const w = this.windows[i];
        this.ownBaseReads += pieceBytes(w);
        const backing = this.pool.take();
        return { index: i, data: await readBase(this.ownFh, w, backing), hashes: new Map(), refs: 1, backing, pool: this.pool };
      }
      this.waiting = true;
      this.tick.fire(); // the source may be waiting to see that we starve
      await this.arrived.wait();
      this.waiting = false;
    }
  }

  private verified = 0;
  private report(): void {
    // with --verify the read-back counts as much work as the writing: one bar, one ETA for the whole card
    const total = this.o.verify ? 2 * this.bytesTotal : this.bytesTotal;
    this.o.progress?.(this.job.id, { phase: this.phase, bytesDone: this.bytesDone + this.verified, bytesTotal: total });
  }

  private async writePiece(buf: Buffer, bufAt: number, r: Range, shared: Map<string, string> | null): Promise<void> {
    const piece = buf.subarray(r.offset - bufAt, r.offset - bufAt + r.length);
    try {
      await this.job.target.write(piece, r.offset);
    } catch (err) {
      throw new Error(`write failed at offset ${r.offset}: ${(err as Error).message}`);
    }
    if (this.o.verify) {
      const key = `${r.offset}+${r.length}`;
      let h = shared?.get(key);
      if (!h) {
        h = sha(piece);
        shared?.set(key, h);
      }
      this.written.push({ offset: r.offset, length: r.length, sha256: h });
    }
    this.bytesDone += r.length;
    this.sinceSync += r.length;
    const every = this.job.target.syncEvery ?? this.o.syncEvery;
    if (every && this.sinceSync >= every) {
      this.sinceSync = 0;
      await this.job.target.sync();
    }
    this.report();
  }

  async run(): Promise<void> {
    const t = this.job.target;
    try {
      this.report();
      await t.prepare(this.base.size, Math.min(this.o.headSize, this.base.size));
      this.phase = 'write';
      this.report();
      const headEnd = Math.min(this.o.headSize, this.base.size);
      for (let i = 0; i < this.windows.length; i++) {
        const w = this.windows[i];
        const c = await this.next(i);
        try {
          const lo = w.readOffset;
          const hi = w.readOffset + w.readLength;
          const body = clip(this.body, lo, hi);
          const head = lo < headEnd ? clip(this.head, lo, hi) : [];
          if (!body.length && !head.length) continue;
          const mine = touches(this.job.delta, lo, hi - lo);
          let buf = c.data;
          if (mine) {
            buf = Buffer.from(c.data); // copy-on-write: the shared window stays the base's
            overlay(this.job.delta!, buf, lo);
          }
          for (const r of head) this.headBytes.push({ offset: r.offset, data: Buffer.from(buf.subarray(r.offset - lo, r.offset - lo + r.length)) });
          for (const r of body) {
            // verify reads back in pieces of at most MAX_READ
            for (let o = r.offset; o < r.offset + r.length; o += MAX_READ) {
              await this.writePiece(buf, lo, { offset: o, length: Math.min(MAX_READ, r.offset + r.length - o) }, mine ? null : c.hashes);
            }
          }
        } finally {
          release(c); // its buffer may go back to the pool
        }
      }
      this.detach(); // nothing more from the source
      this.phase = 'sync';
      this.report();
      await t.sync();
      this.phase = 'head';
      for (const h of this.headBytes) await this.writePiece(h.data, h.offset, { offset: h.offset, length: h.data.length }, null);
      await t.sync();
      let verifyMethod: string | undefined;
      if (this.o.verify) {
        this.phase = 'verify';
        this.report();
        verifyMethod = await this.verify();
      }
      this.phase = 'done';
      this.result = {
        id: this.job.id,
        status: 'ok',
        phase: 'done',
        message: `${this.bytesTotal} bytes written${verifyMethod ? `, verified by read-back (${verifyMethod})` : ''}`,
        bytesWritten: this.bytesTotal,
        ownBaseReads: this.ownBaseReads,
        verifyMethod,
      };
    } catch (err) {
      this.failed = true;
      const e = err as Error & { offset?: number };
      this.result = {
        id: this.job.id,
        status: 'failed',
        phase: this.phase,
        message: e.message,
        bytesWritten: this.bytesDone,
        ownBaseReads: this.ownBaseReads,
        mismatchOffset: e.offset,
      };
    } finally {
      this.finished = true;
      for (const c of this.queue.splice(0)) release(c);
      this.detach();
      this.tick.fire();
      await this.ownFh?.close().catch(() => {});
      await t.close().catch(() => {});
      this.report();
    }
  }

  /** Reads every written range back and compares hashes; on a mismatch names the first wrong byte. */
  private async verify(): Promise<string> {
    const reader = await this.job.target.reader();
    try {
      this.written.sort((a, b) => a.offset - b.offset);
      for (const w of this.written) {
        const got = await reader.read(w.offset, w.length);
        if (sha(got) !== w.sha256) {
          const want = await this.expected(w.offset, w.length);
          let k = 0;
          while (k < w.length && got[k] === want[k]) k++;
          const at = w.offset + k;
          const err = new Error(
            `verify failed: byte at offset ${at} (0x${at.toString(16)}) reads back 0x${(got[k] ?? 0).toString(16).padStart(2, '0')}, wrote 0x${(want[k] ?? 0).toString(16).padStart(2, '0')} (${reader.method})`,
          ) as Error & { offset: number };
          err.offset = at;
          throw err;
        }
        this.verified += w.length;
        this.report();
      }
      return reader.method;
    } finally {
      await reader.close();
    }
  }

  /** What the card should hold at [offset, offset+length): base + delta, read again (only on a mismatch). */
  private async expected(offset: number, length: number): Promise<Buffer> {
    const fh = await fs.open(this.base.path, 'r');
    try {
      const buf = await readBase(fh, { readOffset: offset, readLength: length, pieces: [{ offset, length }] });
      if (this.job.delta) overlay(this.job.delta, buf, offset);
      return buf;
    } finally {
      await fh.close();
    }
  }
}

/** Flashes every job at once; resolves when every card is done or failed (it never rejects for one card). */
export async function flashAll(base: FlashBase, jobs: FlashJob[], opts: EngineOptions = {}): Promise<EngineResult> {
  const o = {
    verify: opts.verify ?? false,
    chunkSize: opts.chunkSize ?? CHUNK,
    headSize: opts.headSize ?? HEAD,
    queueDepth: Math.max(1, opts.queueDepth ?? 8),
    detach: opts.detach ?? true,
    detachAfterMs: opts.detachAfterMs ?? 2000,
    syncEvery: opts.syncEvery ?? 0,
    progress: opts.progress,
  };
  if (o.chunkSize % base.blockSize || o.chunkSize > MAX_READ) throw new Error(`chunk size ${o.chunkSize} must be a multiple of ${base.blockSize} and at most ${MAX_READ}`);
  for (const j of jobs) {
    if (j.delta && j.delta.baseSize !== base.size) throw new Error(`${j.id}: the delta is for a ${j.delta.baseSize}-byte base, not ${base.size}`);
  }
  const union = alignExtents([...base.mapped, ...jobs.flatMap((j) => j.delta?.extents ?? [])], base.blockSize, base.size);
  const windows = windowsOf(union, o.chunkSize);
  const tick = new Signal();
  // enough buffers for every queue to be full and each card working on one, plus the one being read
  const pool = new BufferPool(o.chunkSize, jobs.length * (o.queueDepth + 1) + 1);
  const writers = jobs.map((j) => new Writer(j, base, windows, o, tick, pool));
  const running = writers.map((w) => w.run());

  let sharedBaseReads = 0;
  const fh = await fs.open(base.path, 'r');
  try {
    for (const w of windows) {
      const live = () => writers.filter((x) => x.attached && !x.finished);
      if (!live().length) break;
      const backing = pool.take();
      const chunk: Chunk = { index: w.index, data: await readBase(fh, w, backing), hashes: new Map(), refs: 1, backing, pool };
      sharedBaseReads += pieceBytes(w);
      for (const x of writers) {
        while (x.attached && !x.finished && x.queue.length >= o.queueDepth) {
          // x is a full queue behind. While another card sits idle waiting for data, the time is charged
          // to x; past the allowance (write bursts and writeback stalls of equal cards even out well
          // below it) x is the one holding the station up and is cut loose
          const starving = o.detach && writers.some((y) => y !== x && y.attached && !y.finished && y.waiting && y.queue.length === 0);
          if (!starving) {
            await tick.wait();
            continue;
          }
          if (x.heldOthersMs >= o.detachAfterMs) {
            x.detach();
            break;
          }
          const t = Date.now();
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([tick.wait(), new Promise<void>((r) => (timer = setTimeout(r, o.detachAfterMs - x.heldOthersMs)))]);
          clearTimeout(timer);
          x.heldOthersMs += Date.now() - t;
        }
        if (x.attached && !x.finished) {
          chunk.refs++;
          x.push(chunk);
        }
      }
      release(chunk); // the source's own hold: the buffer is free once the last card is done with it
    }
  } finally {
    await fh.close();
    for (const x of writers) x.end();
  }
  await Promise.all(running);
  return { results: writers.map((w) => w.result!), sharedBaseReads };
}
