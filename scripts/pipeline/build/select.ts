// Phase select: which devices this build covers (--only, --shard), and the previous build it adds to.
// --only adds to the previous signed manifest: one that cannot vouch for the other devices is refused, never
// replaced by a smaller signed one. Reads only; nothing is written yet.
import { devicesToBuild } from '../select/devices.ts';
import { previousBuild } from '../select/unchanged.ts';
import { UserError } from '../../util/errors.ts';
import type { BuildRun } from './context.ts';
import { anotherBuild } from './manifest.ts';

export async function select(run: BuildRun): Promise<void> {
  const { o } = run;
  run.devices = devicesToBuild(run.fleet, o.only, o.shard);
  run.previous = await previousBuild(o.outDir, o.secrets);
  // a selection of every device drops nothing: it is a full build, whatever came before
  if (!o.only?.length || o.shard || coversEveryDevice(run)) return;
  const flag = o.incremental ? '--changed-since' : '--only';
  if (run.previous.untrusted) throw cannotVouch(flag, o.outDir, run.previous.untrusted, "put back the previous build's manifest.json and manifest.json.asc");
  const other = run.previous.manifest && !o.incremental ? anotherBuild(run.previous.manifest, run.fleet, o.sourceDateEpoch) : undefined;
  if (other) throw cannotVouch(flag, o.outDir, other, 'build against what the previous build was made from');
}

function coversEveryDevice(run: BuildRun): boolean {
  const chosen = new Set(run.devices.map((d) => d.id));
  return run.fleet.active.every((d) => chosen.has(d.id));
}

/** --only against a previous build that cannot vouch for the devices it would keep: what is wrong and the two ways on. */
function cannotVouch(flag: string, outDir: string, why: string, remedy: string): UserError {
  return new UserError(
    `${flag}: the previous build in ${outDir} cannot vouch for the devices this build would keep: ${why}. ` +
      `A build of only some devices would sign a manifest without the others. Build every device (without ${flag}), ` +
      `or ${remedy}. Nothing was written.`,
  );
}
