// provision: every selected device through connect → preflight → upload → apply → verify, many at once.
// Bounded concurrency (p-limit); each device is independent (its failure is its result, never the run's);
// transient network trouble is retried from a fresh connection with exponential backoff and jitter.
import { sshClosedReason } from '../render/firstboot/firewall.ts';
import type { Fleet } from '../inventory/fleet.ts';
import pLimit from 'p-limit';
import { PHASES, PhaseError, describe, isTransient, type Phase } from './errors.ts';
import { BundleError, deviceBundle, type DeviceBundle } from './bundle.ts';
import { DeviceLog } from './log.ts';
import { describeFirstboot } from './firstboot-state.ts';
import { GatewayPool } from './gateway.ts';
import { DEFAULT_TIMEOUTS, type DeviceRun, type ProvisionOptions, type Timeouts } from './context.ts';
import { connect } from './phase/connect.ts';
import { preflight } from './phase/preflight.ts';
import { upload } from './phase/upload.ts';
import { apply } from './phase/apply.ts';
import { verify } from './phase/verify.ts';
import { REFUSED_PHASE, type DeviceResult } from '../ui/reporter.ts';
import type { ResolvedDevice } from '../inventory/fleet.ts';
import { SelectionError } from '../util/errors.ts';
import { namedDevices } from '../inventory/select.ts';

export const DEFAULT_CONCURRENCY = 16;
export const DEFAULT_RETRIES = 3;

/** Active devices a full run skips because their firewall accepts no SSH, with the reason. */
export function unreachableDevices(fleet: Fleet): { id: string; reason: string }[] {
  return fleet.active.flatMap((d) => {
    const reason = sshClosedReason(d);
    return reason ? [{ id: d.id, reason }] : [];
  });
}

/** Which devices a run covers: the active ones, or exactly those named by --only (checked, every problem at once, exit 2). */
export function devicesToProvision(opts: Pick<ProvisionOptions, 'fleet' | 'only'>): ResolvedDevice[] {
  const { fleet, only } = opts;
  // a device whose firewall accepts no SSH cannot be reached: named ones are refused, a full run skips them
  if (!only?.length) return fleet.active.filter((d) => !sshClosedReason(d));
  // a revoked device must never get credentials
  const { devices, problems } = namedDevices(fleet, only, 'provision only delivers to active devices', sshClosedReason);
  if (problems.length) throw new SelectionError(problems, '\nNothing was done.');
  return devices;
}

/** Delay before retry n (1-based): base·2^(n-1), capped, with "equal jitter" (half fixed, half random). */
export function backoffDelay(n: number, baseMs: number, capMs = 30_000, rand = Math.random): number {
  const d = Math.min(capMs, baseMs * 2 ** (n - 1));
  return Math.round(d / 2 + rand() * (d / 2));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  status: DeviceResult['status'];
  phase: Phase;
  message: string;
}

async function attempt(run: DeviceRun, state: { applied: boolean }): Promise<Outcome> {
  const enter = (p: Phase) => {
    run.opts.hooks?.onPhase?.(run.device.id, p, run.attempt);
    run.progress({ phase: p });
    return p;
  };
  let phase: Phase = enter('connect');
  try {
    await connect(run);
    phase = enter('preflight');
    const facts = await preflight(run);
    const warn = facts.warnings.length ? ` (warning: ${facts.warnings.join('; ')})` : '';
    // where the device's own first boot stands (a seed-delivered device may still be retrying by itself)
    const fbNow = facts.firstboot && facts.firstboot.state !== 'done' ? `; on the device: ${describeFirstboot(facts.firstboot)}` : '';
    if (facts.appliedHash === run.bundle.hash && !run.opts.force) {
      // a retry that finds its own earlier apply recorded has done the work
      if (state.applied) return { status: 'ok', phase: 'verify', message: `applied bundle ${run.bundle.hash.slice(0, 12)} (confirmed after reconnecting)${warn}` };
      return { status: 'skipped', phase: 'preflight', message: `already at bundle ${run.bundle.hash.slice(0, 12)}${warn}` };
    }
    if (run.opts.dryRun) {
      const b = run.bundle;
      return {
        status: 'ok',
        phase: 'preflight',
        message:
          `dry run: would upload ${b.files.length} file(s) (${b.bytes} bytes) and apply bundle ${b.hash.slice(0, 12)}; ` +
          `device ${facts.arch}, ${Math.round(facts.memKiB / 1024)} MiB RAM, ${Math.round(facts.rootFreeKiB / 1024)} MiB free, applied now: ${facts.appliedHash ? facts.appliedHash.slice(0, 12) : 'none'}${fbNow}${warn}`,
      };
    }
    phase = enter('upload');
    await upload(run);
    await apply(run, () => {
      phase = enter('apply');
      state.applied = true;
    });
    phase = enter('verify');
    await verify(run);
    return { status: 'ok', phase: 'verify', message: `applied bundle ${run.bundle.hash.slice(0, 12)}${warn}` };
  } catch (err) {
    if (err instanceof PhaseError) throw err;
    // a lost connection during apply is retried (the program is idempotent and locks itself), but a
    // deadline that passed while it ran is not: it may still be running there
    const timedOut = (err as { code?: string }).code === 'ETIMEDOUT' && phase === 'apply';
    throw new PhaseError(phase, describe(err) + (timedOut ? ` (raise it with --timeout apply=SECONDS; see ${run.log.file})` : ''), isTransient(err) && !timedOut);
  } finally {
    run.session?.close(); // also ends the device shell if it still waits (skipped, dry run, failure)
    run.session = undefined;
    run.remote = undefined;
  }
}

async function provisionOne(device: ResolvedDevice, bundle: DeviceBundle | Error, base: Omit<DeviceRun, 'device' | 'bundle' | 'log' | 'attempt' | 'progress'>): Promise<DeviceResult> {
  const { opts } = base;
  const rep = opts.reporter;
  const log = DeviceLog.forDevice(opts.outDir, device.id);
  const retries = opts.retries ?? DEFAULT_RETRIES;
  try {
    log.line(`=== provision ${opts.dryRun ? '(dry run) ' : ''}of ${device.id}${bundle instanceof Error ? '' : `, bundle ${bundle.hash}`}`);
    if (bundle instanceof Error) {
      log.line(`failed: ${bundle.message}`);
      return { id: device.id, status: 'failed', phase: REFUSED_PHASE, message: bundle.message };
    }
    const run: DeviceRun = {
      ...base,
      device,
      bundle,
      log,
      attempt: 1,
      progress: (p) => rep.update(device.id, p),
    };
    const state = { applied: false };
    // the report names the furthest phase a failure reached (a device that dropped during upload and then
    // stayed unreachable failed in upload), with the last attempt's error beside it
    let deepest: PhaseError | undefined;
    for (;;) {
      try {
        const o = await attempt(run, state);
        log.line(`${o.status} (${o.phase}): ${o.message}`);
        return { id: device.id, ...o };
      } catch (err) {
        const e = err as PhaseError;
        log.line(`${e.phase}: ${e.message}${e.transient ? ' (transient)' : ''}`);
        if (!deepest || PHASES.indexOf(e.phase) >= PHASES.indexOf(deepest.phase)) deepest = e;
        if (!e.transient || run.attempt > retries) {
          const tries = run.attempt > 1 ? ` (${run.attempt} attempts)` : '';
          const last = deepest !== e ? `; last attempt: ${e.phase}: ${e.message}` : '';
          return { id: device.id, status: 'failed', phase: deepest.phase, message: deepest.message + last + tries };
        }
        const delay = backoffDelay(run.attempt, opts.backoffMs ?? 1000);
        log.line(`retry ${run.attempt}/${retries} in ${delay} ms`);
        rep.update(device.id, { phase: e.phase, message: `retry ${run.attempt}/${retries} in ${(delay / 1000).toFixed(1)} s: ${e.message}` });
        run.attempt++;
        await sleep(delay);
      }
    }
  } finally {
    await log.close();
  }
}

/** A full run's devices whose firewall accepts no SSH: skipped before anything is tried, each with its reason. */
export function refusedDevices(opts: Pick<ProvisionOptions, 'fleet' | 'only'>): DeviceResult[] {
  if (opts.only?.length) return []; // named ones are refused by devicesToProvision
  return unreachableDevices(opts.fleet).map((u) => ({ id: u.id, status: 'skipped', phase: REFUSED_PHASE, message: u.reason }));
}

/**
 * Provision the selected devices. Resolves with one result per active device in inventory order (a full run's
 * SSH-closed devices skipped in 'select' with their reason); never throws for a device's failure. Throws
 * SelectionError for a bad --only (nothing done).
 */
export async function provision(opts: ProvisionOptions): Promise<DeviceResult[]> {
  const devices = devicesToProvision(opts);
  const refused = refusedDevices(opts);
  const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...(opts.timeouts ?? {}) };
  const inManifest = new Map(opts.manifest.devices.map((d) => [d.id, d]));
  const gateways = new GatewayPool(opts.keysDir, Boolean(opts.trustNewHostKeys), timeouts.connect);
  const base = { opts, timeouts, env: opts.env ?? process.env, gateways };
  const limit = pLimit(opts.concurrency ?? DEFAULT_CONCURRENCY);
  const order = new Set([...devices.map((d) => d.id), ...refused.map((r) => r.id)]);
  const ids = opts.fleet.active.map((d) => d.id).filter((id) => order.has(id));
  opts.reporter.begin(opts.dryRun ? 'provision (dry run)' : 'provision', ids, [...PHASES]);
  for (const r of refused) opts.reporter.done(r);
  try {
    const worked = await Promise.all(
      devices.map((d) =>
        limit(async () => {
          let bundle: DeviceBundle | Error;
          const m = inManifest.get(d.id);
          try {
            if (!m) throw new BundleError(`${d.id} is not in the build's manifest.json: run edgeforge build (it covers every active device) and provision again`);
            bundle = deviceBundle(m);
          } catch (err) {
            bundle = err as Error;
          }
          const r = await provisionOne(d, bundle, base);
          opts.reporter.done(r);
          return r;
        }),
      ),
    );
    const byId = new Map([...refused, ...worked].map((r) => [r.id, r]));
    return ids.map((id) => byId.get(id)!);
  } finally {
    await gateways.closeAll();
  }
}
