// A small pool of worker threads for the OpenPGP work (key generation, encryption, decryption), which is
// pure JavaScript and CPU-bound: with 2,000 devices it is most of the time a build spends on keys.
// size 0 runs everything inline (tests, tiny fleets); workers are unref'd while idle so a forgotten
// close() never keeps the process alive.
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { ops, type PgpOps } from './pgp-ops.mjs';

type OpName = keyof PgpOps;
type Args<K extends OpName> = Parameters<PgpOps[K]>[0];
type Result<K extends OpName> = Awaited<ReturnType<PgpOps[K]>>;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export class PgpPool {
  private slots: Slot[] = [];
  private pending = new Map<number, Pending & { slot: Slot }>();
  private nextId = 1;
  private rr = 0;
  private closed = false;

  constructor(readonly size: number) {}

  // workers start on first use: a run that only reads keys never pays for them
  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(new URL('./worker.mjs', import.meta.url));
      const slot: Slot = { worker, busy: 0 };
      worker.unref();
      worker.on('message', (msg: { id: number; ok: boolean; result?: unknown; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (--p.slot.busy === 0) p.slot.worker.unref();
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new Error(msg.error));
      });
      // a worker that dies takes its pending calls with it (rejected, never hung) and leaves the pool
      const fail = (err: Error) => {
        this.slots = this.slots.filter((s) => s !== slot);
        for (const [id, p] of this.pending) {
          if (p.slot === slot) {
            this.pending.delete(id);
            p.reject(err);
          }
        }
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`key worker exited (code ${code})`)));
      this.slots.push(slot);
    }
  }

  run<K extends OpName>(op: K, args: Args<K>): Promise<Result<K>> {
    if (this.size === 0 || this.closed) return (ops[op] as (a: Args<K>) => Promise<Result<K>>)(args);
    if (this.slots.length === 0) this.start();
    // least-busy slot, round-robin among ties
    let best = this.slots[this.rr++ % this.slots.length];
    for (const s of this.slots) if (s.busy < best.busy) best = s;
    const id = this.nextId++;
    return new Promise<Result<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, slot: best });
      if (best.busy++ === 0) best.worker.ref();
      best.worker.postMessage({ id, op, args });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

/**
 * Pool size: EDGEFORGE_KEY_WORKERS if set, else 0 (inline). Since key packets are written with node:crypto
 * (pgp-v4.mjs) a device costs ~1 ms of OpenPGP work and the rest is file I/O on the main thread; measured on
 * the 2-core machines, 2 workers were slower than inline (startup, message copies). Set it where cores are idle.
 */
export function defaultPoolSize(): number {
  const env = process.env.EDGEFORGE_KEY_WORKERS;
  if (env !== undefined && /^\d+$/.test(env)) return Math.min(Number(env), os.availableParallelism?.() ?? os.cpus().length);
  return 0;
}
