// The two faces of progress at fleet scale, over one Tally (scripts/ui/tally.ts):
//  - LiveReporter, in a terminal: one listr2 task whose title is a block redrawn a few times a second — a line
//    per stage, the few slowest items in flight, the latest failures with their reason — never a row per device;
//  - LogReporter, for pipes, CI logs and --json: the same counts as one plain line every few seconds on stderr,
//    each failure once as it happens.
// Updates only touch the tally; text is made on the timer, so 2,000 devices updating cost no redraws.
import { Listr, ListrLogger, ProcessOutput, type ListrTaskWrapper, type DefaultRenderer } from 'listr2';
import { Tally } from './tally.ts';
import { failureText, groupedFailures, groupedSkips, liveLines, plainLine } from './view.ts';
import type { DeviceResult, Progress, Reporter, StageSpec } from './types.ts';

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof DefaultRenderer>;

export interface LiveOptions {
  stream?: NodeJS.WriteStream;
  refreshMs?: number;
  /** how many of the slowest items in flight to show */
  slowest?: number;
  /** how many of the latest failures stay on screen (all are listed at the end) */
  failures?: number;
}

export class LiveReporter implements Reporter {
  private readonly tally = new Tally();
  private readonly notes: string[] = [];
  private task?: Task;
  private finish?: () => void;
  private running?: Promise<unknown>;
  private timer?: NodeJS.Timeout;
  private readonly stream: NodeJS.WriteStream;

  constructor(private readonly opts: LiveOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
  }

  begin(title: string, ids: string[], stages?: StageSpec[]): void {
    this.tally.begin(title, ids, stages, Date.now());
    if (this.running) return;
    const done = new Promise<void>((r) => (this.finish = r));
    // on stderr, whatever stdout is (listr2 falls back to its line-per-change renderer when stdout is a pipe)
    const rendererOptions = { formatOutput: 'wrap' as const, logger: new ListrLogger({ processOutput: new ProcessOutput(this.stream, this.stream) }) };
    const list = new Listr([{ title: this.block(), task: (_c: unknown, t: Task) => ((this.task = t), done) }], {
      renderer: 'default',
      rendererOptions,
      fallbackRenderer: 'default',
      fallbackRendererOptions: rendererOptions,
    });
    this.running = list.run().catch(() => undefined);
    this.timer = setInterval(() => this.render(), this.opts.refreshMs ?? 200);
    this.timer.unref();
  }

  private block(): string {
    const now = Date.now();
    // listr2 wraps at stdout's width less its indent (80 when stdout is a pipe): cut lines before it does
    const width = Math.max(40, Math.min(this.stream.columns ?? 80, process.stdout.columns ?? 80) - 4);
    const lines = liveLines(this.tally.snapshot(now), this.tally.slowest(this.opts.slowest ?? 3, now), this.tally.failures, this.notes, { maxFailures: this.opts.failures ?? 5 });
    return lines.map((l) => (l.length > width ? l.slice(0, width - 1) + '…' : l)).join('\n');
  }

  private render(): void {
    if (this.task) this.task.title = this.block();
  }

  update(id: string, p: Progress): void {
    this.tally.update(id, p, Date.now());
  }

  done(r: DeviceResult): void {
    this.tally.done(r, Date.now());
  }

  count(stage: string, done: number, total: number): void {
    this.tally.count(stage, done, total, Date.now());
  }

  note(line: string): void {
    this.notes.push(line);
    if (this.notes.length > 3) this.notes.shift();
  }

  async end(): Promise<DeviceResult[]> {
    clearInterval(this.timer);
    this.render();
    this.finish?.();
    await this.running;
    const results = this.tally.results();
    const failed = groupedFailures(this.tally.failures);
    if (failed.length) this.stream.write(`failed:\n${failed.map((l) => `  ${l}`).join('\n')}\n`);
    for (const l of groupedSkips(results)) this.stream.write(l + '\n');
    return results;
  }
}

export class LogReporter implements Reporter {
  private readonly tally = new Tally();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly write: (line: string) => void,
    private readonly intervalMs = 5000,
  ) {}

  begin(title: string, ids: string[], stages?: StageSpec[]): void {
    const first = !this.tally.title;
    this.tally.begin(title, ids, stages, Date.now());
    this.write(`${title}: ${ids.length} device(s)`);
    if (!first) return;
    this.timer = setInterval(() => this.write(plainLine(this.tally.snapshot(Date.now()))), this.intervalMs);
    this.timer.unref();
  }

  update(id: string, p: Progress): void {
    this.tally.update(id, p, Date.now());
  }

  done(r: DeviceResult): void {
    this.tally.done(r, Date.now());
    if (r.status === 'failed') this.write(`✖ ${failureText(r)}`);
  }

  count(stage: string, done: number, total: number): void {
    this.tally.count(stage, done, total, Date.now());
  }

  note(line: string): void {
    this.write(line);
  }

  async end(): Promise<DeviceResult[]> {
    clearInterval(this.timer);
    const results = this.tally.results();
    for (const l of groupedSkips(results)) this.write(l);
    this.write(plainLine(this.tally.snapshot(Date.now())));
    return results;
  }
}

/** the terminal view, or plain lines on stderr without a terminal or with --json (stdout keeps the document) */
export function makeReporter(opts: { json: boolean; isTTY: boolean; err: (line: string) => void; intervalMs?: number }): Reporter {
  if (opts.isTTY && !opts.json) return new LiveReporter();
  return new LogReporter(opts.err, opts.intervalMs);
}
