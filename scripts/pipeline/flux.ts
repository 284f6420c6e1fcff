// The GitOps stage as the build uses it (scripts/render/flux, scripts/render/gitops, scripts/pipeline/gitops, scripts/pipeline/inputs):
// per-device flux-bootstrap files + the first-boot fragment that places them, and the OUT/gitops scaffold.
// Without a pinned Flux install (gitops.flux.install) there is nothing to bootstrap: the build says so loudly.
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import type { DeviceSecrets, RenderOptions } from '../render/device.ts';
import { renderFluxBootstrap, fluxFirstbootFragment, type FluxDeviceSecrets } from '../render/flux/bootstrap.ts';
import { fluxInstallProblem, readFluxBundle, type FluxBundleInput } from '../render/flux/components.ts';
import { renderGitopsScaffold } from '../render/gitops/scaffold.ts';
import { loadFluxBundle } from './inputs/flux-bundle.ts';
import { loadGitopsPublicKeys } from './inputs/public-keys.ts';
import { writeGitopsTree } from './gitops/tree.ts';
import { FluxConfigError, UserError } from '../util/errors.ts';

export function toFluxSecrets(id: string, s: DeviceSecrets): FluxDeviceSecrets {
  if (!s.deployKey || !s.sops) throw new Error(`${id}: the Flux bootstrap needs the device's deploy key and SOPS key`);
  return { deployKeyPrivate: s.deployKey.privateKey, deployKeyPublic: s.deployKey.publicKey, sopsPrivateArmored: s.sops.privateKeyArmored, siteSopsPrivateArmored: s.siteSops?.privateKeyArmored };
}

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
  return {
    input,
    render: {
      fluxBootstrap: (d, f, s) => renderFluxBootstrap(d, f, toFluxSecrets(d.id, s), input).map((x) => ({ name: x.path.split('/').pop()!, text: Buffer.from(x.bytes).toString('utf8'), secret: x.secret })),
      firstbootFragments: [fluxFirstbootFragment(fleet)],
    },
  };
}

/** OUT/gitops: the repository scaffold (public keys only), pruned to what this inventory produces. */
export async function writeGitopsScaffold(fleet: Fleet, keysDir: string, outDir: string, input: FluxBundleInput): Promise<{ path: string; note?: string }> {
  try {
    const files = renderGitopsScaffold(fleet, await loadGitopsPublicKeys(keysDir, fleet), input);
    await writeGitopsTree(path.join(outDir, 'gitops'), files, { prune: true });
    return { path: 'gitops' };
  } catch (err) {
    if (err instanceof FluxConfigError) return { path: '', note: `no GitOps scaffold: ${err.message}` };
    throw err;
  }
}
