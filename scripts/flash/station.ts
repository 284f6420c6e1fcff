// Station mode: a station file maps slots (USB ports of the hub) to target paths; every run fills the slots
// with the next active devices, in inventory order, that the job log does not record as flashed.
//
// The job log (OUT/flash/jobs.jsonl) is append-only, one JSON object per line, each line fsynced:
//   {"event":"start", "batch", "device", "slot", "target", "deltaSha256", "at"}
//   {"event":"result","batch", "device", "slot", "target", "status", "phase", "message", "at"}
// A device is flashed when its last result is ok. A start without a result is a batch that crashed: that
// card's content is unknown, the device goes back into the queue, and the next run says so.
// OUT/flash/state.json is a summary rewritten (atomically) from the log after each batch; the log is the truth.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.ts';

export const JOB_LOG = 'flash/jobs.jsonl';
export const STATE_FILE = 'flash/state.json';

export interface Slot {
  slot: string;
  target: string;
}

const SlotMap = z.record(z.string(), z.string().min(1));
const StationSchema = z.union([z.strictObject({ slots: z.union([SlotMap, z.array(z.strictObject({ slot: z.union([z.string(), z.number()]), target: z.string().min(1) }))]) }), SlotMap]);

/** `slots: {A: /dev/disk/by-path/...}` or a list of {slot, target}, or a bare mapping; YAML or JSON. */
export function parseStation(text: string, where: string): Slot[] {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new Error(`${where}: not YAML/JSON: ${(err as Error).message}`);
  }
  const r = StationSchema.safeParse(raw);
  if (!r.success) throw new Error(`${where}: expected "slots:" mapping slot names to target paths (${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')})`);
  const v = r.data as Record<string, unknown>;
  const slots = 'slots' in v && typeof v.slots === 'object' ? v.slots : v;
  const list: Slot[] = Array.isArray(slots)
    ? slots.map((s: { slot: string | number; target: string }) => ({ slot: String(s.slot), target: s.target }))
    : Object.entries(slots as Record<string, string>).map(([slot, target]) => ({ slot, target }));
  if (!list.length) throw new Error(`${where}: no slots`);
  const seen = new Set<string>();
  for (const s of list) {
    if (seen.has(s.target)) throw new Error(`${where}: target ${s.target} appears in two slots`);
    seen.add(s.target);
  }
  return list;
}

export interface JobEvent {
  event: 'start' | 'result';
  batch: number;
  device: string;
  slot?: string;
  target: string;
  deltaSha256?: string;
  status?: 'ok' | 'failed' | 'skipped';
  phase?: string;
  message?: string;
  at: string;
}

export interface JobState {
  batches: number;
  flashed: Map<string, JobEvent>;
  /** started but never finished (a crash): device -> its start event */
  interrupted: Map<string, JobEvent>;
  failed: Map<string, JobEvent>;
}

export class JobLog {
  constructor(readonly outDir: string) {}
  get path(): string {
    return path.join(this.outDir, JOB_LOG);
  }

  async read(): Promise<JobState> {
    let text = '';
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const st: JobState = { batches: 0, flashed: new Map(), interrupted: new Map(), failed: new Map() };
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let e: JobEvent;
      try {
        e = JSON.parse(line);
      } catch {
        continue; // a line torn by a crash mid-append: the start before it already says "unknown"
      }
      st.batches = Math.max(st.batches, e.batch ?? 0);
      if (e.event === 'start') {
        st.interrupted.set(e.device, e);
        st.failed.delete(e.device);
      } else if (e.event === 'result') {
        st.interrupted.delete(e.device);
        if (e.status === 'ok') {
          st.flashed.set(e.device, e);
          st.failed.delete(e.device);
        } else if (e.status === 'failed') {
          st.flashed.delete(e.device); // a failed re-flash means the card in hand is not good
          st.failed.set(e.device, e);
        }
      }
    }
    return st;
  }

  async append(events: Omit<JobEvent, 'at'>[]): Promise<void> {
    await fs.mkdir(path.dirname(this.path), { recursive: true });
    const at = new Date().toISOString();
    const fh = await fs.open(this.path, 'a', 0o644);
    try {
      await fh.write(events.map((e) => JSON.stringify({ ...e, at }) + '\n').join(''));
      await fh.datasync(); // the record must survive the crash it is there for
    } finally {
      await fh.close();
    }
  }

  async writeState(): Promise<void> {
    const st = await this.read();
    const doc = {
      note: `summary of ${JOB_LOG}; the log is authoritative`,
      batches: st.batches,
      flashed: Object.fromEntries([...st.flashed].map(([id, e]) => [id, { slot: e.slot, target: e.target, batch: e.batch, at: e.at }])),
      failed: Object.fromEntries([...st.failed].map(([id, e]) => [id, { slot: e.slot, target: e.target, batch: e.batch, message: e.message }])),
      interrupted: [...st.interrupted.keys()],
    };
    await writeFileAtomic(path.join(this.outDir, STATE_FILE), JSON.stringify(doc, null, 2) + '\n');
  }
}

/** The next batch: slots in station order, filled with the first not-yet-flashed devices in inventory order. */
export function nextBatch(slots: Slot[], candidates: string[], state: JobState): { slot: string; target: string; device: string }[] {
  const queue = candidates.filter((id) => !state.flashed.has(id));
  return slots.slice(0, queue.length).map((s, i) => ({ ...s, device: queue[i] }));
}
