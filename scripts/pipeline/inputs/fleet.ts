// The inventory every command reads, always validated first (an invalid one throws InventoryError: every
// problem at once, nothing written).
import path from 'node:path';
import { loadInventoryFile } from '../../inventory/load.ts';
import type { Fleet } from '../../inventory/fleet.ts';

/** `common.inventory` as the user gave it (problems are reported under that name), resolved against `io.cwd`. */
export async function loadFleet(ctx: { common: { inventory: string }; io: { cwd: string } }): Promise<Fleet> {
  const file = ctx.common.inventory;
  return loadInventoryFile(path.resolve(ctx.io.cwd, file), file);
}
