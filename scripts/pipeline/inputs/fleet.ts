// The inventory every command reads, always validated first (an invalid one throws InventoryError: every
// problem at once, nothing written).
import path from 'node:path';
import { loadInventoryFile } from '../../inventory/load.ts';
import type { Fleet } from '../../inventory/fleet.ts';
import { memoryProblems } from '../../render/plan/memory.ts';
import { InventoryError } from '../../util/errors.ts';

/** `common.inventory` as the user gave it (problems are reported under that name), resolved against `io.cwd`. */
export async function loadFleet(ctx: { common: { inventory: string }; io: { cwd: string } }): Promise<Fleet> {
  const file = ctx.common.inventory;
  const fleet = await loadInventoryFile(path.resolve(ctx.io.cwd, file), file);
  // a profile whose memory budget leaves too little for workloads is refused like any inventory problem
  const memory = memoryProblems(fleet);
  if (memory.length)
    throw new InventoryError(
      file,
      memory.map((m) => ({ ...fleet.profileRamAt[m.profile], message: m.message })),
    );
  return fleet;
}
