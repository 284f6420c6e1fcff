// `edgeforge flash`: checks every target, asks once, then writes all cards at the same time through the
// fan-out engine, recording each device -> card in the job log. One card's failure is that card's alone.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.ts';
import type { DeviceResult, Reporter } from '../ui/reporter.ts';
import type { Delta } from '../disk/delta.ts';
import { loadFlashInputs, type FlashInputs } from './build-output.ts';
import { flashAll, type EngineOptions, type FlashJob, type JobResult } from './engine.ts';
import { blockProblems, describe, inspectBlock, REAL_SYS, type SysEnv } from './safety.ts';
import { BlockTarget, FileTarget, type TargetSink } from './target.ts';
import { JobLog } from './station.ts';

/** the progress view's stage for a card until it is written and synced (verify is the other) */
const WRITE_STAGE = { name: 'write', phases: ['preflight', 'prepare', 'write', 'sync', 'head'] };
/** The phase a card is refused in before anything is written to it (not in the build, target refused or unopenable). */
export const BEFORE_WRITING = 'preflight';
export interface FlashRequest {
  device: string;
  target: string;
  slot?: string;
}

export interface ResolvedTarget {
  kind: 'file' | 'block';
  path: string;
  /** block devices: capacity and the confirmation line */
  capacity?: number;
  label?: string;
}

export interface FlashRunOptions {
  outDir: string;
  requests: FlashRequest[];
  verify?: boolean;
  yes?: boolean;
  forceDevice?: boolean;
  /** a terminal is attached: confirmation can be asked */
  interactive?: boolean;
  confirm?: (lines: string[]) => Promise<boolean>;
  reporter: Reporter;
  env?: SysEnv;
  /** job log batch number (station mode); 0 for a plain run */
  batch?: number;
  /** tests: wrap or replace the target (fault injection) */
  openTarget?: (t: ResolvedTarget, deviceId: string) => Promise<TargetSink>;
  engine?: Omit<EngineOptions, 'progress' | 'verify'>;
  /** already loaded inputs (station mode loads them once) */
  inputs?: FlashInputs;
}

export interface FlashRunResult {
  results: DeviceResult[];
  details: JobResult[];
  seconds: number;
  bytesWritten: number;
  sharedBaseReads: number;
}

function devno(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** What a target path is, and every reason not to write it. */
export async function resolveTarget(p: string, imageSize: number, basePath: string, o: { forceDevice?: boolean; env?: SysEnv }): Promise<{ target?: ResolvedTarget; problems: string[] }> {
  const abs = path.resolve(p);
  let st;
  try {
    st = await fs.stat(abs, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { problems: [`${p}: ${(err as Error).message}`] };
    const dir = await fs.stat(path.dirname(abs)).catch(() => undefined);
    if (!dir?.isDirectory()) return { problems: [`${p}: no such device, and ${path.dirname(abs)} is not a directory to create an image file in`] };
    // a missing /dev/sdX or /dev/disk/by-path/... is an unplugged card, not a new image file to create
    if (/^\/dev\/(disk\/[^/]+\/)?[^/]+$/.test(abs)) return { problems: [`${p}: no such device (is the card plugged in?)`] };
    return { target: { kind: 'file', path: abs }, problems: [] };
  }
  if (st.isFile()) {
    const real = await fs.realpath(abs);
    if (real === (await fs.realpath(basePath).catch(() => basePath))) return { problems: [`${p} is the base image itself: never overwritten`] };
    return { target: { kind: 'file', path: abs }, problems: [] };
  }
  if (!st.isBlockDevice()) return { problems: [`${p} is neither a block device nor a regular file`] };
  const info = await inspectBlock(abs, devno(st.rdev), o.env ?? REAL_SYS);
  const problems = await blockProblems(info, { imageSize, forceDevice: Boolean(o.forceDevice), env: o.env });
  return { target: { kind: 'block', path: abs, capacity: info.size, label: `${p} (${info.partition ? info.name : info.disk}): ${describe(info)}` }, problems };
}

async function defaultOpen(t: ResolvedTarget): Promise<TargetSink> {
  return t.kind === 'block' ? BlockTarget.open(t.path, t.capacity!) : FileTarget.open(t.path);
}

export async function runFlash(o: FlashRunOptions): Promise<FlashRunResult> {
  const t0 = Date.now();
  refuseRepeats(o.requests);
  const inputs = o.inputs ?? (await loadFlashInputs(o.outDir));
  const base = inputs.base;
  const failed = new Map<string, DeviceResult>();
  const ready = await checkTargets(o, inputs, failed);
  await confirmBlockDevices(o, ready);
  const log = new JobLog(o.outDir);
  const batch = o.batch ?? 0;
  const { jobs, meta } = await openCards(o, ready, failed);
  if (jobs.length) {
    await log.append(
      jobs.map((j) => ({
        event: 'start' as const,
        batch,
        device: j.id,
        slot: meta.get(j.id)!.slot,
        target: meta.get(j.id)!.target,
        deltaSha256: ready.find((r) => r.req.device === j.id)!.deltaSha256,
      })),
    );
  }
  noteThreadPool(o.reporter, jobs.length);
  o.reporter.begin(
    `flash ${o.requests.length} card(s)${o.verify ? ' with verify' : ''}`,
    o.requests.map((r) => r.device),
    o.verify ? [WRITE_STAGE, 'verify'] : [WRITE_STAGE],
  );
  for (const f of failed.values()) o.reporter.done(f);
  const engine = await flashAll(base, jobs, {
    ...o.engine,
    verify: Boolean(o.verify),
    progress: (id, p) => o.reporter.update(id, { phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
  });
  for (const r of engine.results) {
    const target = meta.get(r.id)!.target;
    o.reporter.done({ id: r.id, status: r.status, phase: r.status === 'ok' ? (o.verify ? 'verify' : 'write') : r.phase, message: `${target}: ${r.message}` });
  }
  if (jobs.length) {
    await log.append(
      engine.results.map((r) => ({ event: 'result' as const, batch, device: r.id, slot: meta.get(r.id)!.slot, target: meta.get(r.id)!.target, status: r.status, phase: r.phase, message: r.message })),
    );
    await log.writeState();
  }
  const results = await o.reporter.end();
  return {
    results,
    details: engine.results,
    seconds: (Date.now() - t0) / 1000,
    bytesWritten: engine.results.reduce((n, r) => n + r.bytesWritten, 0),
    sharedBaseReads: engine.sharedBaseReads,
  };
}

/** One card per device, one device per card. */
function refuseRepeats(requests: FlashRequest[]): void {
  const dupDev = requests.find((r, i) => requests.findIndex((x) => x.device === r.device) !== i);
  if (dupDev) throw new UserError(`device ${dupDev.device} is given twice: one card per device`);
  const dupTarget = requests.find((r, i) => requests.findIndex((x) => path.resolve(x.target) === path.resolve(r.target)) !== i);
  if (dupTarget) throw new UserError(`target ${dupTarget.target} is given twice: one device per card`);
}

type ReadyCard = { req: FlashRequest; target: ResolvedTarget; delta: Delta; deltaSha256: string };

/** Each request's delta from the build and its target checked; a device that fails either goes to `failed`. */
async function checkTargets(o: FlashRunOptions, inputs: FlashInputs, failed: Map<string, DeviceResult>): Promise<ReadyCard[]> {
  const ready: ReadyCard[] = [];
  for (const req of o.requests) {
    let delta;
    try {
      delta = await inputs.delta(req.device);
    } catch (err) {
      failed.set(req.device, { id: req.device, status: 'failed', phase: 'preflight', message: (err as Error).message });
      continue;
    }
    const r = await resolveTarget(req.target, inputs.base.size, inputs.base.path, o);
    if (r.problems.length || !r.target) {
      failed.set(req.device, { id: req.device, status: 'failed', phase: 'preflight', message: `refused: ${r.problems.join('; ')}` });
      continue;
    }
    ready.push({ req, target: r.target, delta: delta.delta, deltaSha256: delta.sha256 });
  }
  return ready;
}

/** Block devices are written only with --yes or after the operator confirms the list, card by card. */
async function confirmBlockDevices(o: FlashRunOptions, ready: ReadyCard[]): Promise<void> {
  const blocks = ready.filter((r) => r.target.kind === 'block');
  if (!blocks.length || o.yes) return;
  if (!o.interactive) throw new UserError(`writing block devices (${blocks.map((b) => b.target.path).join(', ')}) needs --yes when no terminal can ask for confirmation. Nothing was written.`);
  const ok = await (o.confirm ?? (async () => false))(blocks.map((b) => `${b.target.label} -> ${b.req.device}${b.req.slot ? ` (slot ${b.req.slot})` : ''}`));
  if (!ok) throw new UserError('not confirmed. Nothing was written.');
}

/** Every ready card opened for writing; one that cannot be opened fails alone. */
async function openCards(o: FlashRunOptions, ready: ReadyCard[], failed: Map<string, DeviceResult>): Promise<{ jobs: FlashJob[]; meta: Map<string, { slot?: string; target: string }> }> {
  const jobs: FlashJob[] = [];
  const meta = new Map<string, { slot?: string; target: string }>();
  for (const r of ready) {
    try {
      const sink = o.openTarget ? await o.openTarget(r.target, r.req.device) : await defaultOpen(r.target);
      jobs.push({ id: r.req.device, target: sink, delta: r.delta });
      meta.set(r.req.device, { slot: r.req.slot, target: r.target.path });
    } catch (err) {
      failed.set(r.req.device, { id: r.req.device, status: 'failed', phase: 'preflight', message: `cannot open ${r.target.path}: ${(err as Error).message}` });
    }
  }
  return { jobs, meta };
}

/**
 * Every card's writes and syncs run on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says more):
 * with more cards than threads, a card blocked in a flush holds up the cards queued behind it.
 */
function noteThreadPool(reporter: Reporter, cards: number): void {
  const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  if (cards + 2 > pool)
    reporter.note(`note: ${cards} cards on a thread pool of ${pool}: start edgeforge with UV_THREADPOOL_SIZE=${Math.min(1024, 2 * cards + 4)} so a slow card cannot hold the others up`);
}
