// Phase select: which devices this build covers (--only, --shard), and the previous build it adds to.
// --only adds to the previous signed manifest: one that cannot vouch for the other devices is refused, never
// replaced by a smaller signed one. Reads only; nothing is written yet.
import { devicesToBuild } from '../select/devices.ts';
import { previousBuild } from '../select/unchanged.ts';
import { UserError } from '../../util/errors.ts';
import type { Manifest } from '../../manifest/types.ts';
import type { BuildRun } from './context.ts';

export async function select(run: BuildRun): Promise<void> {
  const { o } = run;
  run.devices = devicesToBuild(run.fleet, o.only, o.shard);
  run.previous = await previousBuild(o.outDir, o.secrets);
  if (!o.only?.length || o.shard) return;
  if (run.previous.untrusted) throw untrustedPrevious(o.outDir, run.previous.untrusted, Boolean(o.incremental));
  const other = run.previous.manifest && !o.incremental ? anotherBuild(run.previous.manifest, run) : undefined;
  if (other && !coversEveryDevice(run)) throw untrustedPrevious(o.outDir, other, false);
}

/** --only keeps the other devices' entries only from a build of this very inventory and epoch. */
function anotherBuild(prev: Manifest, run: BuildRun): string | undefined {
  const { fleet, o } = run;
  if (prev.fleet !== fleet.name) return `it is fleet ${prev.fleet}'s, this inventory is fleet ${fleet.name}'s`;
  if (prev.inventorySha256 !== fleet.inventorySha256)
    return `it was built from another inventory (sha256 ${prev.inventorySha256.slice(0, 12)}…, this one ${fleet.inventorySha256.slice(0, 12)}…): its entries do not describe what this inventory builds`;
  if (prev.sourceDateEpoch !== o.sourceDateEpoch)
    return `it was built with SOURCE_DATE_EPOCH=${prev.sourceDateEpoch}, this build with ${o.sourceDateEpoch} (set SOURCE_DATE_EPOCH=${prev.sourceDateEpoch} to add to it)`;
  return undefined;
}

function coversEveryDevice(run: BuildRun): boolean {
  const chosen = new Set(run.devices.map((d) => d.id));
  return run.fleet.active.every((d) => chosen.has(d.id));
}

/** --only against a previous build whose manifest cannot be trusted: what is wrong and the two ways on. */
function untrustedPrevious(outDir: string, why: string, incremental: boolean): UserError {
  const flag = incremental ? '--changed-since' : '--only';
  return new UserError(
    `${flag}: the previous build in ${outDir} cannot vouch for the devices this build would keep: ${why}. ` +
      `A build of only some devices would sign a manifest without the others. Build every device (without ${flag}), ` +
      `or build against what the previous build was made from. Nothing was written.`,
  );
}
