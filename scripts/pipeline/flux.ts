// The GitOps stage as the build uses it (scripts/render/flux, scripts/render/gitops, scripts/pipeline/gitops, scripts/pipeline/inputs):
// the pinned Flux bundle read and checked once, the device stage made of it (render/flux/flux-stage.ts), and the
// OUT/gitops scaffold.
// Without a pinned Flux install (gitops.flux.install) there is nothing to bootstrap: the build says so loudly.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { codeVersion } from './select/inputs-hash.ts';
import { INPUTS_STAMP } from './write.ts';
import { stable } from './select/changes.ts';
import { sha256Hex } from '../util/hash.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { Fleet } from '../inventory/fleet.ts';
import type { RenderOptions } from '../render/device.ts';
import { fluxStage } from '../render/flux/flux-stage.ts';
import { fluxInstallProblem, readFluxBundle, type FluxBundleInput } from '../render/flux/components.ts';
import { renderGitopsScaffold } from '../render/gitops/scaffold.ts';
import { loadFluxBundle } from './inputs/flux-bundle.ts';
import { loadGitopsPublicKeys } from './inputs/public-keys.ts';
import { writeGitopsTree } from './gitops/tree.ts';
import { FluxConfigError, InventoryError, UserError } from '../util/errors.ts';
import { fluxImageArchiveProblems } from '../render/flux/controller-images.ts';

export interface FluxStage {
  /** why there is no Flux bootstrap, when there is none */
  problem?: string;
  render?: RenderOptions;
  input: FluxBundleInput;
}

/** Reads and checks the pinned Flux bundle once (a wrong sha256 stops the build: exit 2, nothing written). */
export async function prepareFlux(fleet: Fleet, inventoryPath: string): Promise<FluxStage> {
  const problem = fluxInstallProblem(fleet);
  if (problem) return { problem, input: {} };
  let input: FluxBundleInput;
  try {
    input = await loadFluxBundle(fleet, inventoryPath);
    if (fleet.gitops.flux.install?.mode === 'bundle') readFluxBundle(fleet, input.bundle);
  } catch (err) {
    throw new UserError(`${(err as Error).message} Nothing was written.`);
  }
  // airgap: every controller image the bundle names must travel as a pinned archive
  const missing = fluxImageArchiveProblems(fleet, input.bundle);
  if (missing.length)
    throw new InventoryError(
      fleet.file,
      missing.map((message) => ({ ...fleet.imageArchiveLists.flux, message: `${message}. Nothing was written.` })),
    );
  return {
    input,
    render: { flux: fluxStage(fleet, input) },
  };
}

/**
 * OUT/gitops: the repository scaffold (public keys only), pruned to what this inventory produces. Its inputs
 * (inventory, public keys, Flux bundle, edgeforge's code) are hashed into gitops/.edgeforge-inputs: the same
 * hash next time and the scaffold (thousands of files for 2,000 devices) is neither rendered nor compared
 * again. The stamp is removed before the tree is touched and written after, so a killed build never leaves
 * a stamp over a half-updated tree. No fsync per file: the build syncs the output once before its manifest.
 */
export async function writeGitopsScaffold(fleet: Fleet, keysDir: string, outDir: string, input: FluxBundleInput): Promise<{ path: string; note?: string; skipped?: boolean }> {
  try {
    const keys = await loadGitopsPublicKeys(keysDir, fleet);
    const dir = path.join(outDir, 'gitops');
    const stamp = path.join(dir, INPUTS_STAMP);
    const inputs = createHash('sha256')
      // every field of the public keys (maps as entry lists), so a field added to GitopsPublicKeys is hashed too
      .update(
        stable({
          code: await codeVersion(),
          inventory: fleet.inventorySha256,
          flux: input.bundle ? sha256Hex(input.bundle) : null,
          keys: JSON.parse(JSON.stringify(keys, (_k, v) => (v instanceof Map ? [...v] : v))),
        }),
      )
      .digest('hex');
    if ((await fs.readFile(stamp, 'utf8').catch(() => '')).trim() === inputs) return { path: 'gitops', skipped: true };
    const files = renderGitopsScaffold(fleet, keys, input);
    await fs.rm(stamp, { force: true });
    await writeGitopsTree(dir, files, { prune: true, fsync: false });
    await writeFileAtomic(stamp, inputs + '\n', { fsync: false });
    return { path: 'gitops' };
  } catch (err) {
    if (err instanceof FluxConfigError) return { path: '', note: `no GitOps scaffold: ${err.message}` };
    throw err;
  }
}
