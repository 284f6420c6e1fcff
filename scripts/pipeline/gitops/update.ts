// `edgeforge gitops --to DIR`: the scaffold from the inventory, the pinned Flux bundle and the public keys,
// merged into an operator's working tree (tree.ts) without clobbering what they own.
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import { renderGitopsScaffold } from '../../render/gitops/scaffold.ts';
import { UserError } from '../../util/errors.ts';
import { loadFluxBundle } from '../inputs/flux-bundle.ts';
import { loadGitopsPublicKeys } from '../inputs/public-keys.ts';
import { writeGitopsTree, type WriteTreeResult } from './tree.ts';
import { downgrades } from './plans-in-tree.ts';

export interface GitopsUpdate {
  /** the inventory as given, and the directory it is relative to */
  inventory: string;
  cwd: string;
  keysDir: string;
  /** the working tree */
  dir: string;
  prune: boolean;
  dryRun: boolean;
  /** false: no fsync per file (a scratch copy that is thrown away: gitops --check) */
  fsync?: boolean;
}

export async function updateGitopsRepo(fleet: Fleet, o: GitopsUpdate): Promise<WriteTreeResult> {
  // a K3s downgrade is refused before anything is written: K3s does not support going back
  const down = await downgrades(fleet, o.dir);
  if (down.length)
    throw new UserError(
      `downgrade refused: ${down.join('; ')}. K3s cannot go back to an older release (its datastore may be migrated already); set the ring's version to at least what it runs. Nothing was written.`,
    );
  let files;
  try {
    const bundle = await loadFluxBundle(fleet, o.inventory, o.cwd);
    const keys = await loadGitopsPublicKeys(path.resolve(o.cwd, o.keysDir), fleet);
    files = renderGitopsScaffold(fleet, keys, bundle);
  } catch (err) {
    // a missing or wrong Flux bundle, a broken public key: the operator fixes the input
    if (err instanceof Error) throw new UserError(err.message);
    throw err;
  }
  return writeGitopsTree(o.dir, files, { prune: o.prune, dryRun: o.dryRun, fsync: o.fsync });
}
