// One progress interface for long per-device work (build, flash, provision), shown at fleet scale by
// scripts/ui/progress.ts: in a terminal a line per stage (done/total, rate, ETA, failed), the few slowest items
// in flight and the latest failures (listr2); without one, or with --json, a plain line of the same counts every
// few seconds on stderr. Work code only calls the Reporter; it never knows which face is showing. This file is
// what work code imports; the types live in types.ts so the files of ui/ import one another in one direction.
import type { DeviceResult, Reporter } from './types.ts';

export type { DeviceResult, Reporter, StageSpec } from './types.ts';
export { formatBytes } from './view.ts';

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

import { REFUSED_PHASE } from './types.ts';
export { REFUSED_PHASE };

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
