// Phase select: which devices this build covers (--only, --shard), and the previous build it adds to.
// --only adds to the previous signed manifest: one that cannot vouch for the other devices is refused, never
// replaced by a smaller signed one. Reads only; nothing is written yet.
import { devicesToBuild } from '../select/devices.ts';
import { previousBuild } from '../select/unchanged.ts';
import { UserError } from '../../util/errors.ts';
import type { BuildRun } from './context.ts';

export async function select(run: BuildRun): Promise<void> {
  const { o } = run;
  run.devices = devicesToBuild(run.fleet, o.only, o.shard);
  run.previous = await previousBuild(o.outDir, o.secrets);
  if (o.only?.length && !o.shard && run.previous.untrusted) throw untrustedPrevious(o.outDir, run.previous.untrusted, Boolean(o.incremental));
}

/** --only against a previous build whose manifest cannot be trusted: what is wrong and the two ways on. */
function untrustedPrevious(outDir: string, why: string, incremental: boolean): UserError {
  const flag = incremental ? '--changed-since' : '--only';
  return new UserError(
    `${flag}: the previous build in ${outDir} cannot vouch for the devices this build would keep: ${why}. ` +
      `A build of only some devices would sign a manifest without the others. Build every device (without ${flag}), ` +
      `or put back the previous build's manifest.json and manifest.json.asc. Nothing was written.`,
  );
}
