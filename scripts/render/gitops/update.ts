// Deciding what `edgeforge gitops --to DIR` does to an existing working tree (pure; scripts/pipeline/gitops/tree.ts applies it):
//   missing file                      -> create (managed or operator)
//   managed file, marker still there  -> update when different
//   managed file, marker removed      -> kept: an operator took it over
//   operator file that exists         -> kept, whatever it holds
//   managed file on disk we no longer generate (a revoked device, a removed site) -> stale; deleted only with prune
// Nothing without the marker is ever deleted.
import { isManaged } from './marker.ts';
import type { ScaffoldFile } from './scaffold.ts';

export type UpdateAction = 'create' | 'update' | 'unchanged' | 'kept' | 'stale' | 'delete';

export interface UpdateEntry {
  path: string;
  action: UpdateAction;
  /** for create/update */
  bytes?: Uint8Array;
  owner?: ScaffoldFile['owner'];
  /** why a file was kept */
  reason?: string;
}

export interface UpdatePlan {
  entries: UpdateEntry[];
  warnings: string[];
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/**
 * @param existing  current bytes of every scaffold path that exists in the tree
 * @param managedOnDisk  paths of all files in the tree that carry the edgeforge marker
 */
export function planScaffoldUpdate(files: ScaffoldFile[], existing: Map<string, Uint8Array>, managedOnDisk: Iterable<string>, opts: { prune?: boolean } = {}): UpdatePlan {
  const entries: UpdateEntry[] = [];
  const warnings: string[] = [];
  const generated = new Set(files.map((f) => f.path));
  for (const f of files) {
    const cur = existing.get(f.path);
    if (!cur) {
      entries.push({ path: f.path, action: 'create', bytes: f.bytes, owner: f.owner });
    } else if (f.owner === 'edgeforge') {
      if (!isManaged(cur)) entries.push({ path: f.path, action: 'kept', owner: f.owner, reason: 'the edgeforge:managed line was removed: an operator owns this file now' });
      else if (same(cur, f.bytes)) entries.push({ path: f.path, action: 'unchanged', owner: f.owner });
      else entries.push({ path: f.path, action: 'update', bytes: f.bytes, owner: f.owner });
    } else {
      entries.push({ path: f.path, action: same(cur, f.bytes) ? 'unchanged' : 'kept', owner: f.owner, reason: same(cur, f.bytes) ? undefined : 'operator-owned' });
      const ring = /^overlays\/sites\/[^/]+\/[^/]+\/kustomization\.yaml$/.test(f.path) && /\/apps\/(canary|stable)\b/.exec(Buffer.from(f.bytes).toString('utf8'));
      if (ring && !Buffer.from(cur).toString('utf8').includes(`apps/${ring[1]}`)) {
        warnings.push(`${f.path}: the inventory puts this site in the ${ring[1]} ring, but the file (yours) does not reference apps/${ring[1]}; change its resources by hand`);
      }
    }
  }
  for (const p of [...managedOnDisk].sort()) {
    if (generated.has(p)) continue;
    entries.push({ path: p, action: opts.prune ? 'delete' : 'stale', reason: 'no longer generated from the inventory (revoked device, removed site or sizing class)' });
  }
  return { entries, warnings };
}
