// The Flux bootstrap as a device stage: the three files K3s's auto-deploy directory gets (bootstrap.ts) and
// the first-boot shell that places them. Agents of a multi-node site run no Flux: no files, the same shell.
import type { Fleet } from '../../inventory/fleet.ts';
import type { DeviceSecrets, DeviceStage } from '../device-stage.ts';
import { fluxFirstbootFragment, renderFluxBootstrap, type FluxDeviceSecrets } from './bootstrap.ts';
import type { FluxBundleInput } from './components.ts';
import { sha256Hex } from '../../util/hash.ts';

export function toFluxSecrets(id: string, s: DeviceSecrets): FluxDeviceSecrets {
  if (!s.deployKey || !s.sops) throw new Error(`${id}: the Flux bootstrap needs the device's deploy key and SOPS key`);
  return { deployKeyPrivate: s.deployKey.privateKey, deployKeyPublic: s.deployKey.publicKey, sopsPrivateArmored: s.sops.privateKeyArmored, siteSopsPrivateArmored: s.siteSops?.privateKeyArmored };
}

/** `input`: the pinned Flux bundle and registry CA, read once by the build (pipeline/flux.ts). */
export function fluxStage(fleet: Fleet, input: FluxBundleInput): DeviceStage {
  const fragment = fluxFirstbootFragment(fleet);
  return {
    inputs: { bundle: input.bundle ? sha256Hex(input.bundle) : null, registryCa: input.registryCa ? sha256Hex(input.registryCa) : null },
    render(d, { fleet: f, secrets }) {
      if (d.cluster.kind === 'multi-node-agent') return { files: [], fragment };
      const files = renderFluxBootstrap(d, f, toFluxSecrets(d.id, secrets), input).map((x) => {
        const name = x.path.split('/').pop()!;
        if (!/^[a-z0-9][a-z0-9.-]*\.yaml$/.test(name)) throw new Error(`flux bootstrap file name "${name}" must be a simple lower-case *.yaml name`);
        return { ...x, path: `bundle/${x.path}` };
      });
      return { files, fragment };
    },
  };
}
