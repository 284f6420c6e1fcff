// Which devices a build covers: all active ones, those named by --only, one --shard, or those whose rendered
// inputs changed since a git revision (--changed-since).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { namedDevices } from '../../inventory/select.ts';
import { SelectionError } from '../../util/errors.ts';
import { inventoryAtRevision } from '../inputs/revision.ts';
import { diffFleets } from './changes.ts';
import { inShard } from './shard.ts';

export function devicesToBuild(fleet: Fleet, only?: string[], shard?: { k: number; n: number }): ResolvedDevice[] {
  if (shard) return fleet.active.filter((d) => inShard(d.id, shard));
  if (!only?.length) return fleet.active;
  const { devices, problems } = namedDevices(fleet, only, 'it gets no artifacts');
  if (problems.length) throw new SelectionError(problems, '\nNothing was written.');
  return devices;
}

/** --changed-since REV: the devices to build (added, re-rendered, reinstated) and those gone (revoked, removed). */
export async function changedSince(fleet: Fleet, inventory: string, rev: string): Promise<{ build: string[]; gone: string[] }> {
  const { fleet: before } = await inventoryAtRevision(inventory, rev);
  const changes = diffFleets(before, fleet);
  return {
    build: changes.filter((c) => c.kind === 'added' || c.kind === 're-rendered' || c.kind === 'reinstated').map((c) => c.id),
    gone: changes.filter((c) => c.kind === 'revoked' || c.kind === 'removed').map((c) => c.id),
  };
}
