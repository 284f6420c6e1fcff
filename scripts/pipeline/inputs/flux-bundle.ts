// Reading the pinned Flux bundle (I/O side of scripts/render/flux/components.ts, which checks the sha256).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import type { FluxBundleInput } from '../../render/flux/components.ts';
import { fluxControllerImages } from '../../render/flux/controller-images.ts';

/**
 * The bundle bytes when the fleet pins `gitops.flux.install: {mode: bundle, file}` (file relative to the
 * inventory file); {} otherwise. `inventoryPath` is the inventory as given (resolved against cwd).
 */
export async function loadFluxBundle(fleet: Pick<Fleet, 'gitops'>, inventoryPath: string, cwd = process.cwd()): Promise<FluxBundleInput> {
  const registryCa = await loadRegistryCa(fleet, inventoryPath, cwd);
  const inst = fleet.gitops.flux.install;
  if (!inst || inst.mode !== 'bundle') return registryCa ? { registryCa } : {};
  const file = path.resolve(path.dirname(path.resolve(cwd, inventoryPath)), inst.file);
  try {
    return { bundle: new Uint8Array(await fs.readFile(file)), ...(registryCa ? { registryCa } : {}) };
  } catch (err) {
    throw new Error(
      `Flux bundle ${inst.file} (${file}): cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Put the pinned Flux ${fleet.gitops.flux.version} install.yaml there; nothing is downloaded at build time.`,
    );
  }
}

/** OCI transport: the registry CA devices pin (gitops.oci.caFile, relative to the inventory), checked to be PEM. */
export async function loadRegistryCa(fleet: Pick<Fleet, 'gitops'>, inventoryPath: string, cwd: string): Promise<Uint8Array | undefined> {
  const oci = fleet.gitops.transport === 'oci' ? fleet.gitops.oci : undefined;
  if (!oci) return undefined;
  const file = path.resolve(path.dirname(path.resolve(cwd, inventoryPath)), oci.caFile);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new Error(
      `gitops.oci.caFile ${oci.caFile} (${file}): cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); it is the CA of the registry's certificate, which every device pins`,
    );
  }
  if (!bytes.toString('utf8').includes('-----BEGIN CERTIFICATE-----')) throw new Error(`gitops.oci.caFile ${oci.caFile}: not a PEM certificate`);
  return new Uint8Array(bytes);
}

/**
 * The controller images the pinned Flux bundle's Deployments run (for the plan's outbound table and validate's
 * mirror check): undefined when the fleet has no bundle or it cannot be read or does not match its pin here.
 */
export async function fluxBundleImages(fleet: Pick<Fleet, 'gitops' | 'k3s'>, inventoryPath: string, cwd = process.cwd()): Promise<string[] | undefined> {
  if (fleet.gitops.flux.install?.mode !== 'bundle') return undefined;
  try {
    const { bundle } = await loadFluxBundle(fleet, inventoryPath, cwd);
    return [...fluxControllerImages(fleet, bundle).keys()];
  } catch {
    return undefined;
  }
}
