// Running counts for work over a whole fleet, per stage: what the progress views show instead of one row per
// device. Pure bookkeeping (the clock is passed in), so the counts are tested without a terminal.
//
// A stage is either per item (render, upload… — an item moves through them in order, as its updates name
// phases) or a batch (keys, sign — counted as a whole with count()). An item that finishes passes every per-item
// stage up to the one it finished in; the stages after that do not apply to it (a dry run stops at preflight,
// a skipped device at the check that skipped it), so they leave its total.
import type { DeviceResult, Progress, StageSpec } from './types.ts';

interface Item {
  id: string;
  /** index of the per-item stage it is in; -1 before its first update */
  stage: number;
  startedAt?: number;
  phase?: string;
  message?: string;
  /** bytes of the current stage, and each stage's once it moved on */
  bytes: Map<number, { done: number; total?: number }>;
  result?: DeviceResult;
  /** the stage its result belongs to */
  endStage?: number;
}

export interface StageLine {
  name: string;
  batch: boolean;
  total: number;
  done: number;
  failed: number;
  skipped: number;
  active: number;
  /** items (or batch units) per second since the stage's first activity */
  rate?: number;
  bytesDone?: number;
  bytesTotal?: number;
  bytesRate?: number;
  etaSeconds?: number;
}

export interface InFlight {
  id: string;
  stage: string;
  phase?: string;
  message?: string;
  seconds: number;
  bytes?: { done: number; total?: number };
}

export interface Snapshot {
  title: string;
  items: number;
  seconds: number;
  ok: number;
  failed: number;
  skipped: number;
  stages: StageLine[];
  inFlight: number;
}

export class Tally {
  readonly items = new Map<string, Item>();
  private order: string[] = [];
  /** firstAt/lastAt: the stage's first and latest activity, so a finished stage's rate stops decaying */
  private stages: { name: string; phases: string[]; batch: boolean; firstAt?: number; lastAt?: number; count?: { done: number; total: number; failed: number } }[] = [];
  /** failures in the order they happened */
  readonly failures: DeviceResult[] = [];
  title = '';
  startedAt = 0;
  /** stages named by begin(): then a phase outside them is only a label (flash's "done"), never a new stage */
  private declared = false;

  begin(title: string, ids: string[], stages: StageSpec[] = [], now: number): void {
    if (!this.title) {
      this.title = title;
      this.startedAt = now;
    }
    if (stages.length) this.declared = true;
    for (const s of stages) this.addStage(s);
    for (const id of ids) {
      if (!this.items.has(id)) this.order.push(id);
      this.items.set(id, { id, stage: -1, bytes: new Map() });
    }
  }

  private addStage(s: StageSpec): number {
    const spec = typeof s === 'string' ? { name: s } : s;
    const at = this.stages.findIndex((x) => x.name === spec.name);
    if (at >= 0) return at;
    this.stages.push({ name: spec.name, phases: spec.phases ?? [spec.name], batch: Boolean(spec.batch) });
    return this.stages.length - 1;
  }

  /** the per-item stage a phase belongs to; with `learn`, a phase never seen becomes a stage, after the others */
  private stageOf(phase: string | undefined, learn: boolean): number | undefined {
    if (!phase) return undefined;
    const i = this.stages.findIndex((s) => !s.batch && s.phases.includes(phase));
    if (i >= 0) return i;
    return learn ? this.addStage(phase) : undefined;
  }

  ids(): string[] {
    return this.order;
  }

  update(id: string, p: Progress, now: number): void {
    const it = this.items.get(id);
    if (!it || it.result) return;
    it.startedAt ??= now;
    const s = this.stageOf(p.phase, !this.declared);
    if (s !== undefined && s !== it.stage) {
      for (let i = Math.max(it.stage, 0); i < s; i++) if (!this.stages[i].batch) this.stages[i].lastAt = now;
      it.stage = s;
      this.stages[s].firstAt ??= now;
      it.message = undefined;
    }
    if (it.stage < 0) {
      // progress before any phase: the item is in the first per-item stage
      it.stage = this.stages.findIndex((x) => !x.batch);
      if (it.stage >= 0) this.stages[it.stage].firstAt ??= now;
    }
    if (p.phase) it.phase = p.phase;
    if (p.message !== undefined) it.message = p.message;
    if (p.bytesDone !== undefined) it.bytes.set(it.stage, { done: p.bytesDone, total: p.bytesTotal });
  }

  done(r: DeviceResult, now: number): void {
    let it = this.items.get(r.id);
    if (!it) {
      this.order.push(r.id);
      it = { id: r.id, stage: -1, bytes: new Map() };
      this.items.set(r.id, it);
    }
    if (it.result) return;
    it.result = r;
    const perItem = this.stages.map((s, i) => (s.batch ? -1 : i)).filter((i) => i >= 0);
    const last = perItem.length ? perItem[perItem.length - 1] : -1;
    // ok in a phase of no stage ("done"): it passed them all; a failure in an unknown phase stays where it was
    // failed in a batch stage (keys): no per-item stage applies to it
    const at = this.stages.some((s) => s.batch && s.name === r.phase) ? -1 : this.stageOf(r.phase, false);
    it.endStage = at ?? (r.status === 'ok' ? last : Math.max(it.stage, perItem[0] ?? -1));
    if (it.endStage >= 0) this.stages[it.endStage].firstAt ??= now;
    for (let i = Math.max(it.stage, 0); i <= it.endStage; i++) if (!this.stages[i].batch) this.stages[i].lastAt = now;
    if (r.status === 'failed') this.failures.push(r);
  }

  /** batch work: keys 812/2000, sign 0/1 */
  count(stage: string, done: number, total: number, now: number, failed = 0): void {
    const i = this.addStage({ name: stage, batch: true });
    const s = this.stages[i];
    s.batch = true;
    s.firstAt ??= now;
    s.lastAt = now;
    s.count = { done, total, failed };
  }

  /** the items in flight, slowest (longest running) first */
  slowest(n: number, now: number): InFlight[] {
    const out: InFlight[] = [];
    for (const it of this.items.values()) {
      if (it.result || it.startedAt === undefined) continue;
      out.push({
        id: it.id,
        stage: this.stages[it.stage]?.name ?? '',
        phase: it.phase,
        message: it.message,
        seconds: (now - it.startedAt) / 1000,
        bytes: it.bytes.get(it.stage),
      });
    }
    return out.sort((a, b) => b.seconds - a.seconds || a.id.localeCompare(b.id)).slice(0, n);
  }

  snapshot(now: number): Snapshot {
    const lines: StageLine[] = this.stages.map((s) => ({ name: s.name, batch: s.batch, total: 0, done: 0, failed: 0, skipped: 0, active: 0 }));
    let ok = 0;
    let failed = 0;
    let skipped = 0;
    let inFlight = 0;
    const bytes = this.stages.map(() => ({ done: 0, total: 0, known: true, any: false }));
    for (const it of this.items.values()) {
      const r = it.result;
      if (r) {
        if (r.status === 'ok') ok++;
        else if (r.status === 'failed') failed++;
        else skipped++;
      } else if (it.startedAt !== undefined) inFlight++;
      this.stages.forEach((s, i) => {
        if (s.batch) return;
        const l = lines[i];
        if (r) {
          const end = it.endStage ?? -1;
          if (i > end) return; // does not apply to it
          l.total++;
          if (i < end || r.status === 'ok') l.done++;
          else if (r.status === 'failed') l.failed++;
          else l.skipped++;
        } else {
          l.total++;
          if (i < it.stage) l.done++;
          else if (i === it.stage) l.active++;
        }
        const b = it.bytes.get(i);
        if (b) {
          const finished = (r && i < (it.endStage ?? -1)) || (r?.status === 'ok' && i === it.endStage) || (!r && i < it.stage);
          bytes[i].any = true;
          bytes[i].done += finished && b.total !== undefined ? b.total : b.done;
          if (b.total === undefined) bytes[i].known = false;
          else bytes[i].total += b.total;
        }
      });
    }
    this.stages.forEach((s, i) => {
      const l = lines[i];
      if (s.batch) {
        l.total = s.count?.total ?? 0;
        l.done = s.count?.done ?? 0;
        l.failed = s.count?.failed ?? 0;
        l.active = l.done + l.failed < l.total && s.firstAt !== undefined ? 1 : 0;
      }
      const left = l.total - l.done - l.failed - l.skipped;
      const until = left > 0 || s.lastAt === undefined ? now : s.lastAt;
      const secs = s.firstAt !== undefined ? Math.max((until - s.firstAt) / 1000, 0.001) : 0;
      if (secs && l.done) {
        l.rate = l.done / secs;
        if (left > 0) l.etaSeconds = left / l.rate;
      }
      if (bytes[i].any) {
        l.bytesDone = bytes[i].done;
        if (bytes[i].known) l.bytesTotal = bytes[i].total;
        if (secs) {
          l.bytesRate = bytes[i].done / secs;
          if (l.bytesTotal && l.bytesRate > 0 && left > 0) l.etaSeconds = (l.bytesTotal - l.bytesDone) / l.bytesRate;
        }
      }
    });
    return { title: this.title, items: this.items.size, seconds: (now - this.startedAt) / 1000, ok, failed, skipped, stages: lines, inFlight };
  }

  /** results in the order begin() named the items; never finished = failed */
  results(): DeviceResult[] {
    return this.order.map((id) => this.items.get(id)?.result ?? { id, status: 'failed' as const, phase: 'none', message: 'not finished' });
  }
}
