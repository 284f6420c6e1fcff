// One progress interface for long per-device work (build, flash, provision), three faces:
//  - listr2: a live line per device in a terminal;
//  - plain: one line per event, for CI logs and pipes;
//  - json: silent while working; the caller prints one document at the end.
// Work code only calls the Reporter; it never knows which face is showing.
import { Listr, type ListrTaskWrapper, type DefaultRenderer, type SimpleRenderer } from 'listr2';

export type DeviceStatus = 'ok' | 'failed' | 'skipped';

export interface DeviceResult {
  id: string;
  status: DeviceStatus;
  /** the phase reached (build: render|write|seed-image|disk; provision: connect|preflight|upload|apply|verify; flash: write|verify) */
  phase: string;
  message: string;
}

export interface Progress {
  phase?: string;
  message?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export interface Reporter {
  /** announce the devices about to be worked on */
  begin(title: string, ids: string[]): void;
  update(id: string, p: Progress): void;
  done(result: DeviceResult): void;
  /** a line for the operator (not per device) */
  note(line: string): void;
  /** stop the live view; returns the results in the order begin() named the devices */
  end(): Promise<DeviceResult[]>;
}

export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) (v /= 1024), i++;
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

/** "312.0 MiB/1.2 GiB 48.3 MiB/s ETA 19s" */
export function throughputText(p: Progress, startedAt: number, now = Date.now()): string {
  if (p.bytesDone === undefined) return '';
  const secs = Math.max((now - startedAt) / 1000, 0.001);
  const rate = p.bytesDone / secs;
  let s = `${formatBytes(p.bytesDone)}${p.bytesTotal ? `/${formatBytes(p.bytesTotal)}` : ''} ${formatBytes(rate)}/s`;
  if (p.bytesTotal && rate > 0 && p.bytesDone < p.bytesTotal) s += ` ETA ${Math.ceil((p.bytesTotal - p.bytesDone) / rate)}s`;
  return s;
}

abstract class Collecting implements Reporter {
  protected order: string[] = [];
  protected results = new Map<string, DeviceResult>();
  protected started = new Map<string, number>();
  begin(_title: string, ids: string[]): void {
    this.order.push(...ids);
    const now = Date.now();
    for (const id of ids) this.started.set(id, now);
  }
  abstract update(id: string, p: Progress): void;
  done(r: DeviceResult): void {
    this.results.set(r.id, r);
  }
  abstract note(line: string): void;
  async end(): Promise<DeviceResult[]> {
    return this.order.map((id) => this.results.get(id) ?? { id, status: 'failed' as const, phase: 'none', message: 'not finished' });
  }
}

export class PlainReporter extends Collecting {
  private lastLine = new Map<string, number>();
  constructor(private readonly write: (line: string) => void) {
    super();
  }
  override begin(title: string, ids: string[]): void {
    super.begin(title, ids);
    this.write(`${title}: ${ids.length} device(s)`);
  }
  update(id: string, p: Progress): void {
    // byte progress at most every 5 s per device: CI logs stay readable
    const now = Date.now();
    if (p.bytesDone !== undefined && p.phase === undefined && now - (this.lastLine.get(id) ?? 0) < 5000) return;
    this.lastLine.set(id, now);
    const tp = throughputText(p, this.started.get(id) ?? now, now);
    this.write(`${id}: ${[p.phase, p.message, tp].filter(Boolean).join(' — ')}`);
  }
  override done(r: DeviceResult): void {
    super.done(r);
    this.write(`${r.id}: ${r.status}${r.status === 'ok' ? '' : ` in ${r.phase}`}${r.message ? ` — ${r.message}` : ''}`);
  }
  note(line: string): void {
    this.write(line);
  }
}

export class JsonReporter extends Collecting {
  update(): void {}
  note(): void {}
}

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

export class ListrReporter extends Collecting {
  private waiters = new Map<string, { resolve: () => void; reject: (e: Error) => void; task?: Task; title: string }>();
  private lists: Promise<unknown>[] = [];
  private pendingUpdates = new Map<string, Progress>();

  override begin(title: string, ids: string[]): void {
    super.begin(title, ids);
    const list = new Listr(
      ids.map((id) => ({
        title: id,
        task: (_ctx: unknown, task: Task) =>
          new Promise<void>((resolve, reject) => {
            this.waiters.set(id, { resolve, reject, task, title: id });
            const finished = this.results.get(id);
            if (finished) return this.settle(finished);
            const p = this.pendingUpdates.get(id);
            if (p) this.update(id, p);
          }),
      })),
      {
        concurrent: true,
        exitOnError: false,
        collectErrors: false,
        rendererOptions: { collapseSubtasks: false, showErrorMessage: true, formatOutput: 'truncate' },
        fallbackRenderer: 'simple',
      },
    );
    this.lists.push(list.run().catch(() => undefined));
  }

  update(id: string, p: Progress): void {
    const w = this.waiters.get(id);
    if (!w?.task) {
      this.pendingUpdates.set(id, p);
      return;
    }
    const tp = throughputText(p, this.started.get(id) ?? Date.now());
    w.task.title = `${id}${p.phase ? ` [${p.phase}]` : ''}${tp ? ` ${tp}` : ''}`;
    if (p.message) w.task.output = p.message;
  }

  override done(r: DeviceResult): void {
    super.done(r);
    this.settle(r);
  }

  private settle(r: DeviceResult): void {
    const w = this.waiters.get(r.id);
    if (!w) return; // the task has not started yet: it settles itself from the stored result
    if (w.task) w.task.title = `${r.id}${r.message ? ` — ${r.message}` : ''}`;
    if (r.status === 'failed') w.reject(new Error(`${r.id}: ${r.phase}: ${r.message}`));
    else {
      if (r.status === 'skipped' && w.task) w.task.skip(`${r.id} — ${r.message || 'skipped'}`);
      w.resolve();
    }
  }

  note(line: string): void {
    process.stderr.write(line + '\n');
  }

  override async end(): Promise<DeviceResult[]> {
    // devices never finished must not keep the view open
    for (const id of this.order) if (!this.results.has(id)) this.done({ id, status: 'failed', phase: 'none', message: 'not finished' });
    await Promise.all(this.lists);
    return super.end();
  }
}

export function makeReporter(opts: { json: boolean; isTTY: boolean; err: (line: string) => void }): Reporter {
  if (opts.json) return new JsonReporter();
  if (opts.isTTY) return new ListrReporter();
  return new PlainReporter(opts.err);
}

export function summarize(results: DeviceResult[]): { ok: number; failed: number; skipped: number; line: string; exitCode: number } {
  const ok = results.filter((r) => r.status === 'ok').length;
  const failed = results.filter((r) => r.status === 'failed').length;
  const skipped = results.filter((r) => r.status === 'skipped').length;
  return { ok, failed, skipped, line: `${ok} ok, ${failed} failed, ${skipped} skipped`, exitCode: failed ? 1 : 0 };
}
