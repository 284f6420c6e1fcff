// One progress interface for long per-device work (build, flash, provision), shown at fleet scale by
// scripts/ui/progress.ts: in a terminal a line per stage (done/total, rate, ETA, failed), the few slowest items
// in flight and the latest failures (listr2); without one, or with --json, a plain line of the same counts every
// few seconds on stderr. Work code only calls the Reporter; it never knows which face is showing.
import type { StageSpec } from './tally.ts';

export type { StageSpec };
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
  /**
   * announce the devices about to be worked on, and the stages the work goes through in order (per-device
   * phases, or batch stages like keys and sign fed by count()); phases never announced become stages as seen
   */
  begin(title: string, ids: string[], stages?: StageSpec[]): void;
  update(id: string, p: Progress): void;
  done(result: DeviceResult): void;
  /** a line for the operator (not per device) */
  note(line: string): void;
  /** a batch stage's progress: keys 812/2000 identities, sign 0/1 */
  count?(stage: string, done: number, total: number): void;
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

/** silent while working (the caller prints one document at the end); a null reporter for tests and benches */
export class JsonReporter implements Reporter {
  private order: string[] = [];
  private results = new Map<string, DeviceResult>();
  begin(_title: string, ids: string[]): void {
    this.order.push(...ids);
  }
  update(): void {}
  done(r: DeviceResult): void {
    this.results.set(r.id, r);
  }
  note(): void {}
  async end(): Promise<DeviceResult[]> {
    return this.order.map((id) => this.results.get(id) ?? { id, status: 'failed' as const, phase: 'none', message: 'not finished' });
  }
}

export { makeReporter } from './progress.ts';

/** The phase of a device refused before any work on it (SSH closed, not in the build): it could not be served. */
export const REFUSED_PHASE = 'select';

/**
 * Counts and the exit status of a run over devices (README, "Exit status"): 0 all done, 1 some failed — and a run
 * that delivered nothing is never 0: 1 when devices were tried (failed, or skipped for a reason), 2 when not one
 * of them could even be tried (each refused in `notStarted` phases: 'select', plus a command's phases that touch
 * nothing, like flash's preflight). A skip in any other phase means the device already was as wanted (a build's
 * unchanged device, a device already at the build's bundle): done. No device at all is nothing to do: 0.
 */
export function summarize(results: DeviceResult[], opts: { notStarted?: string[] } = {}): { ok: number; failed: number; skipped: number; line: string; exitCode: number } {
  const notStarted = new Set([REFUSED_PHASE, ...(opts.notStarted ?? [])]);
  const ok = results.filter((r) => r.status === 'ok').length;
  const failed = results.filter((r) => r.status === 'failed').length;
  const skipped = results.filter((r) => r.status === 'skipped').length;
  const refused = results.filter((r) => r.status !== 'ok' && notStarted.has(r.phase)).length;
  const done = results.filter((r) => r.status === 'ok' || (r.status === 'skipped' && !notStarted.has(r.phase))).length;
  let exitCode = failed ? 1 : 0;
  if (results.length && !done) exitCode = refused === results.length ? 2 : 1;
  return { ok, failed, skipped, line: `${ok} ok, ${failed} failed, ${skipped} skipped`, exitCode };
}
