// One batch at a flashing station: read the job log, say what a crash left behind, fill the slots with
// the next devices not yet flashed, flash them, and leave the log ready for the next batch.
import { loadFlashInputs, type FlashInputs } from './build-output.ts';
import { runFlash, type FlashRunOptions, type FlashRunResult } from './flash.ts';
import { JobLog, nextBatch, type Slot } from './station.ts';

export interface StationOptions extends Omit<FlashRunOptions, 'requests' | 'batch' | 'inputs'> {
  slots: Slot[];
  /** devices that may be flashed, in inventory order (active, with a disk delta) */
  candidates: string[];
  note?: (line: string) => void;
  /** read (and check) the build output; called each batch, so a build replaced between batches is checked again */
  loadInputs?: () => Promise<FlashInputs>;
}

export interface StationBatch {
  batch: number;
  assigned: { slot: string; target: string; device: string }[];
  run?: FlashRunResult;
  /** devices still to flash after this batch (failed ones included: they come round again) */
  remaining: string[];
  flashedTotal: number;
}

export async function runStationBatch(o: StationOptions): Promise<StationBatch> {
  const log = new JobLog(o.outDir);
  const before = await log.read();
  for (const [id, e] of before.interrupted) {
    o.note?.(`resuming: ${id} was being written to ${e.target}${e.slot ? ` (slot ${e.slot})` : ''} in batch ${e.batch} when the run stopped; that card is not good and ${id} is flashed again`);
  }
  const assigned = nextBatch(o.slots, o.candidates, before);
  const batch = before.batches + 1;
  if (!assigned.length) {
    return { batch: before.batches, assigned, remaining: [], flashedTotal: o.candidates.filter((id) => before.flashed.has(id)).length };
  }
  for (const a of assigned) o.note?.(`slot ${a.slot} (${a.target}) <- ${a.device}`);
  const inputs = await (o.loadInputs ?? (() => loadFlashInputs(o.outDir)))();
  const run = await runFlash({ ...o, inputs, batch, requests: assigned.map((a) => ({ device: a.device, target: a.target, slot: a.slot })) });
  const after = await log.read();
  return {
    batch,
    assigned,
    run,
    remaining: o.candidates.filter((id) => !after.flashed.has(id)),
    flashedTotal: o.candidates.filter((id) => after.flashed.has(id)).length,
  };
}
