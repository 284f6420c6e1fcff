// Phase skip: which devices need rendering. Each device's inputs are hashed without decrypting anything
// (select/inputs-hash.ts): the inventory, SOURCE_DATE_EPOCH, the base image, the airgap pins, and what every
// device stage declares it reads (stages.ts declaredInputs), so a stage cannot be left out. A device the
// signed previous build has with the same inputs, its files in place, is not rendered again.
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import type { ManifestDevice } from '../../manifest/types.ts';
import { deviceInputsHash, fleetInputsHash } from '../select/inputs-hash.ts';
import { unchangedDevices } from '../select/unchanged.ts';
import { declaredInputs } from './stages.ts';
import type { BuildRun } from './context.ts';

export async function skip(run: BuildRun): Promise<void> {
  const { o, fleet } = run;
  const fleetHash = await fleetInputsHash(fleet, {
    sourceDateEpoch: o.sourceDateEpoch,
    baseImage: run.baseImage,
    render: declaredInputs(run.stages.render),
    airgap: run.airgap?.files.map((f) => [f.dir ? `${f.dir}/${f.name}` : f.name, f.sha256]) ?? null,
  });
  run.inputsOf = async (ds: ResolvedDevice[]) => {
    const ids = o.secrets.identities ? await o.secrets.identities(ds) : new Map<string, string | undefined>();
    return new Map(ds.map((d) => [d.id, deviceInputsHash(fleetHash, fleet, d, ids.get(d.id))]));
  };
  run.inputs = await run.inputsOf(run.devices);
  const prev = run.previous?.manifest;
  const canSkip = Boolean(o.secrets.identities) && !o.force && prev?.fleet === fleet.name;
  run.unchanged = canSkip ? await unchangedDevices(o.outDir, prev, run.inputs) : new Map<string, ManifestDevice>();
  run.toRender = run.devices.filter((d) => !run.unchanged.has(d.id));
  run.entries = new Map(run.unchanged);
}
