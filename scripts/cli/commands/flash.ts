import path from 'node:path';
import { promises as fs } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { command, type RunContext } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { makeReporter, summarize, formatBytes, type DeviceResult } from '../../ui/reporter.ts';
import { runFlash, BEFORE_WRITING, type FlashRunResult } from '../../flash/flash.ts';
import { runStationBatch } from '../../flash/station-run.ts';
import { parseStation, JOB_LOG } from '../../flash/station.ts';
import { askConfirmation } from '../../flash/confirm.ts';
import { loadSignedFlashInputs, type FlashInputs } from '../../flash/build-output.ts';

function strings(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

function signedInputs(ctx: RunContext, outDir: string): Promise<FlashInputs> {
  return loadSignedFlashInputs({
    outDir,
    outGiven: ctx.common.out,
    keysDir: path.resolve(ctx.io.cwd, ctx.common.keys),
    fingerprint: ctx.options.fingerprint as string | undefined,
    allowUnsigned: Boolean(ctx.options['allow-unsigned']),
    warn: ctx.io.err,
  });
}

function totals(r: FlashRunResult): string {
  const rate = r.seconds > 0 ? r.bytesWritten / r.seconds : 0;
  return `${formatBytes(r.bytesWritten)} written in ${r.seconds.toFixed(1)} s (${formatBytes(rate)}/s over all cards)`;
}

/** counts and exit status: a card refused before anything was written to it was not tried (all refused: 2) */
const outcome = (results: DeviceResult[]) => summarize(results, { notStarted: [BEFORE_WRITING] });

function printSummary(ctx: RunContext, results: DeviceResult[], run: FlashRunResult | undefined, extra: string[] = []): void {
  const s = outcome(results);
  const lines = [`flash: ${s.line}${run ? ` — ${totals(run)}` : ''}`];
  for (const r of results) if (r.status !== 'ok') lines.push(`  ${r.id}: ${r.status} in ${r.phase}: ${r.message}`);
  ctx.io.out([...lines, ...extra].join('\n'));
}

export const flash = command('flash', 'write each device image to its card at the same time, verified by read-back', {
  usage: 'flash --device ID --target PATH [--device ID --target PATH ...] [--verify] | flash --station FILE [--verify]',
  description: `
Writes base image + each device's disk delta (from the build in --out) to its target, all at once: the base
is read once for every card, only mapped blocks are written, the first MiB (partition table) goes last.
Targets are whole removable block devices (/dev/sdX, /dev/mmcblkN, /dev/disk/by-path/...) or regular files.
Refused: mounted devices, the system disk, partitions and non-removable disks (unless --force-device), cards
smaller than the image. In a terminal you confirm each card (model, size, serial) unless --yes.
--station FILE maps slots to targets and fills them with the next active devices (inventory order) that the
job log (OUT/${JOB_LOG}) does not record as flashed; run it again for the next batch.
Before anything is written, OUT/manifest.json must carry the build key's signature (pinned: --fingerprint, else
KEYS/build/signing-key.fingerprint); every delta and the base are then checked against the manifest's sha256.
Exit 0 every card ok; 1 some card failed (the others completed), or none was written successfully; 2 bad usage,
refused confirmation, unreadable build output, or every card refused before anything was written to it (a device
not in the build, a refused target) — nothing written.
Details: docs/flashing.md`,
  common: ['inventory', 'out', 'keys', 'json'],
  options: {
    device: { type: 'string', multiple: true, value: 'ID', description: 'device to flash (pairs with the --target at the same position)' },
    target: { type: 'string', multiple: true, value: 'PATH', description: 'block device or image file for that device' },
    station: { type: 'string', value: 'FILE', description: 'station file (YAML/JSON: slots: {NAME: PATH}); flashes the next batch' },
    verify: { type: 'boolean', default: false, description: 'read every written range back (bypassing the page cache) and compare' },
    yes: { type: 'boolean', default: false, description: 'do not ask for confirmation (needed for block devices without a terminal)' },
    'force-device': { type: 'boolean', default: false, description: 'allow partitions and non-removable disks (never mounted or system disks)' },
    fingerprint: { type: 'string', value: 'FPR', description: 'the build key fingerprint to pin (default: KEYS/build/signing-key.fingerprint)' },
    'allow-unsigned': { type: 'boolean', default: false, description: 'flash a build without checking its signature (warns; for builds made without keys)' },
  },
  examples: ['edgeforge flash --device ulsan1-line1-001 --target /dev/sdb --device ulsan1-line1-002 --target /dev/sdc --verify', 'edgeforge flash --station station.yaml --verify'],
  async run(ctx) {
    const devices = strings(ctx.options.device);
    const targets = strings(ctx.options.target);
    const station = ctx.options.station as string | undefined;
    const outDir = path.resolve(ctx.io.cwd, ctx.common.out);
    const common = {
      outDir,
      verify: Boolean(ctx.options.verify),
      yes: Boolean(ctx.options.yes),
      forceDevice: Boolean(ctx.options['force-device']),
      interactive: ctx.io.isTTY && !ctx.common.json,
      confirm: (lines: string[]) => askConfirmation(lines),
    };
    const reporter = () => makeReporter({ json: ctx.common.json, isTTY: ctx.io.isTTY, err: ctx.io.err });

    if (station) {
      if (devices.length || targets.length) throw new UsageError('--station assigns devices itself: give either --station or --device/--target pairs', flash);
      let text: string;
      try {
        text = await fs.readFile(path.resolve(ctx.io.cwd, station), 'utf8');
      } catch {
        throw new UserError(`station file ${station} not found`);
      }
      let slots;
      try {
        // relative slot paths are relative to the station file
        slots = parseStation(text, station).map((s) => ({ ...s, target: path.resolve(path.dirname(path.resolve(ctx.io.cwd, station)), s.target) }));
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      const fleet = await loadFleet(ctx);
      const inputs = await signedInputs(ctx, outDir);
      const built = new Set((inputs.manifest?.devices ?? []).filter((d) => d.artifacts?.some((a) => a.kind === 'disk-delta')).map((d) => d.id));
      const candidates = fleet.active.map((d) => d.id).filter((id) => !inputs.manifest || built.has(id));
      const missing = fleet.active.length - candidates.length;
      if (!candidates.length) throw new UserError(`no active device of ${ctx.common.inventory} has a disk delta in ${ctx.common.out}: run "edgeforge build --base-image FILE" first`);
      if (missing && !ctx.common.json) ctx.io.err(`note: ${missing} active device(s) have no disk delta in ${ctx.common.out} and are not offered (rebuild with --base-image)`);
      for (;;) {
        const b = await runStationBatch({ ...common, slots, candidates, loadInputs: () => signedInputs(ctx, outDir), reporter: reporter(), note: ctx.common.json ? undefined : ctx.io.err });
        const results = b.run?.results ?? [];
        const tail = `station: batch ${b.batch}: ${b.flashedTotal}/${candidates.length} device(s) flashed${b.remaining.length ? `, next: ${b.remaining.slice(0, slots.length).join(', ')}` : ', all done'}`;
        if (ctx.common.json) {
          ctx.io.out(JSON.stringify({ devices: results, batch: b.batch, flashed: b.flashedTotal, remaining: b.remaining }, null, 2));
          return outcome(results).exitCode;
        }
        if (!b.assigned.length) {
          ctx.io.out(`station: all ${candidates.length} device(s) are flashed (job log ${path.join(ctx.common.out, JOB_LOG)})`);
          return 0;
        }
        printSummary(ctx, results, b.run, [tail]);
        if (!common.interactive || !b.remaining.length) return outcome(results).exitCode;
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`Swap in the next ${Math.min(slots.length, b.remaining.length)} card(s) and press Enter (q to stop): `);
        rl.close();
        if (answer.trim().toLowerCase().startsWith('q')) return outcome(results).exitCode;
      }
    }

    if (!devices.length) throw new UsageError('give --device ID --target PATH (repeatable), or --station FILE', flash);
    if (devices.length !== targets.length) throw new UsageError(`${devices.length} --device but ${targets.length} --target: give them in pairs, each --target right after its --device`, flash);
    const inputs = await signedInputs(ctx, outDir);
    const run = await runFlash({ ...common, inputs, reporter: reporter(), requests: devices.map((device, i) => ({ device, target: path.resolve(ctx.io.cwd, targets[i]) })) });
    if (ctx.common.json) ctx.io.out(JSON.stringify({ devices: run.results }, null, 2));
    else printSummary(ctx, run.results, run);
    return outcome(run.results).exitCode;
  },
});
