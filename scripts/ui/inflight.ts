// A listr2 view for runs over hundreds of devices: a running-totals line and one line per device in
// flight (a fixed number of slots = the concurrency), instead of a line per device in the fleet.
// Same Reporter interface as scripts/ui/reporter.ts; failures are listed once the view closes.
import { Listr, type ListrTaskWrapper, type DefaultRenderer, type SimpleRenderer } from 'listr2';
import { throughputText, type DeviceResult, type Progress, type Reporter } from './reporter.ts';

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

export class InFlightReporter implements Reporter {
  private order: string[] = [];
  private results = new Map<string, DeviceResult>();
  private started = new Map<string, number>();
  private slotOf = new Map<string, number>();
  private slots: (string | undefined)[];
  private tasks: (Task | undefined)[] = [];
  private totalsTask?: Task;
  private finish?: () => void;
  private running?: Promise<unknown>;
  private title = '';
  private counts = { ok: 0, failed: 0, skipped: 0 };

  constructor(
    slots: number,
    private readonly write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  ) {
    this.slots = new Array(Math.max(1, slots)).fill(undefined);
  }

  begin(title: string, ids: string[]): void {
    this.title = title;
    this.order.push(...ids);
    this.slots = this.slots.slice(0, Math.max(1, Math.min(this.slots.length, ids.length)));
    const done = new Promise<void>((r) => (this.finish = r));
    const list = new Listr(
      [
        { title: this.totals(), task: (_c: unknown, t: Task) => ((this.totalsTask = t), done) },
        ...this.slots.map((_, i) => ({ title: '·', task: (_c: unknown, t: Task) => ((this.tasks[i] = t), done) })),
      ],
      { concurrent: true, exitOnError: false, collectErrors: false, rendererOptions: { collapseSubtasks: false, formatOutput: 'truncate' }, fallbackRenderer: 'simple' },
    );
    this.running = list.run().catch(() => undefined);
  }

  private totals(): string {
    const { ok, failed, skipped } = this.counts;
    const n = ok + failed + skipped;
    return `${this.title}: ${n}/${this.order.length} done — ${ok} ok, ${failed} failed, ${skipped} skipped, ${this.slotOf.size} in flight`;
  }

  update(id: string, p: Progress): void {
    if (this.results.has(id)) return;
    let s = this.slotOf.get(id);
    if (s === undefined) {
      s = this.slots.indexOf(undefined);
      if (s < 0) return; // more in flight than slots: the totals still count it
      this.slots[s] = id;
      this.slotOf.set(id, s);
      this.started.set(id, Date.now());
    }
    const tp = throughputText(p, this.started.get(id) ?? Date.now());
    const t = this.tasks[s];
    if (t) t.title = `${id}${p.phase ? ` [${p.phase}]` : ''}${tp ? ` ${tp}` : ''}${p.message ? ` ${p.message}` : ''}`;
    if (this.totalsTask) this.totalsTask.title = this.totals();
  }

  done(r: DeviceResult): void {
    this.results.set(r.id, r);
    this.counts[r.status]++;
    const s = this.slotOf.get(r.id);
    if (s !== undefined) {
      this.slots[s] = undefined;
      this.slotOf.delete(r.id);
      const t = this.tasks[s];
      if (t) t.title = '·';
    }
    if (this.totalsTask) this.totalsTask.title = this.totals();
  }

  note(line: string): void {
    this.write(line);
  }

  async end(): Promise<DeviceResult[]> {
    for (const t of this.tasks) if (t) t.title = '·';
    if (this.totalsTask) this.totalsTask.title = this.totals();
    this.finish?.();
    await this.running;
    const out = this.order.map((id) => this.results.get(id) ?? { id, status: 'failed' as const, phase: 'none', message: 'not finished' });
    for (const r of out) if (r.status === 'failed') this.write(`${r.id}: failed in ${r.phase} — ${r.message}`);
    return out;
  }
}
