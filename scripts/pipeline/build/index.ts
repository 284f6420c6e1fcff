// `edgeforge build`, the thin shell around the pure renderers, as phases over one BuildRun (context.ts):
//   select    the devices (--only, --shard) and the previous signed build (select.ts)
//   inputs    --base-image, the airgap bundle, the A/B and fleet bases, verified before anything is written
//   skip      inputs hash per device (no secret decrypted): unchanged devices are not rendered (skip.ts)
//   keys      secrets of the devices to render
//   render    per device: files, seed image and disk delta (device-images.ts), staged directory (render.ts)
//   gitops    OUT/gitops, the repository scaffold
//   commit    one sync, manifest signed, staged directories swapped in, signature + manifest.json renamed last
// A device that fails is reported and the others complete (exit 1); bad input stops the build before
// anything is written (exit 2); an output that cannot be written (full, read-only) stops it before the
// commit, the previous build left as it was (exit 1). `buildFleet` is the one entry point of the CLI (and so
// of the bench): it prepares the device stages (stages.ts) and the keystore, then runs `build`.
//
// OUT/
//   manifest.json, manifest.json.asc, signing-key.asc
//   k3s-airgap/*                       airgap installs: the verified bundle, once
//   base/base.json                     with --base-image: the base the deltas apply to (disk stage)
//   base/ab-<key>.img (+ .json)        with --base-image and os: the base rearranged into two root slots (A/B)
//   base/fleet-<key>.img (+ .json)     with --base-image and an airgap install: the base + the EFK3S partition
//                                      holding the K3s airgap files; base.json, deltas, flash use it
//   devices/<id>/seed/{user-data,meta-data,network-config}
//   devices/<id>/seed.img              FAT "CIDATA" with the three seed files
//   devices/<id>/bundle/...            the first-boot bundle (see scripts/render/device.ts)
//   devices/<id>/disk.delta            with --base-image
import path from 'node:path';
import type { StageSpec } from '../../ui/reporter.ts';
import { MANIFEST_NAME } from '../../manifest/types.ts';
import { keystoreSecrets } from '../secrets.ts';
import { abort, timed, type BuildOptions, type BuildPhase, type BuildResult, type BuildRun } from './context.ts';
import { select } from './select.ts';
import { inputs } from './inputs.ts';
import { skip } from './skip.ts';
import { keys } from './keys.ts';
import { render } from './render.ts';
import { gitops } from './gitops.ts';
import { assembleManifest } from './manifest.ts';
import { commit } from './commit.ts';
import { prepareStages, type StageSources } from './stages.ts';

export type { BuildOptions, BuildStages } from './context.ts';

/** what the progress view shows a build as: keys and sign for the whole run, the rest per device */
const BUILD_STAGES: StageSpec[] = [
  { name: 'keys', batch: true },
  'render',
  { name: 'images', phases: ['seed-image', 'disk'] },
  'write',
  { name: 'sign', batch: true },
  { name: 'commit', batch: true },
];

/** `edgeforge build`: the device stages and the keystore of `keysDir`, then the build. */
export async function buildFleet(o: Omit<BuildOptions, 'secrets' | 'stages'> & Omit<StageSources, 'only'> & { exampleAdmin: boolean }): Promise<BuildResult> {
  const stages = await prepareStages({ ...o, only: o.only });
  const secrets = await keystoreSecrets({ dir: o.keysDir, fleet: o.fleet, exampleAdmin: o.exampleAdmin, warn: o.warn, withSiteSops: true });
  try {
    return await build({ ...o, secrets, stages });
  } finally {
    await secrets.close();
  }
}

// the phases that move a run forward share one shape, as provision/phase/ does; the manifest and the commit return what they made
const PHASES = { select, inputs, skip, keys, render, gitops } satisfies Record<string, BuildPhase>;

export async function build(o: BuildOptions): Promise<BuildResult> {
  const { select, inputs, skip, keys, render, gitops } = PHASES;
  const run = newRun(o);
  await select(run);
  await inputs(run);
  await timed(run, 'inputs', () => skip(run));
  o.reporter.begin(
    `build ${run.fleet.name}`,
    run.devices.map((d) => d.id),
    BUILD_STAGES,
  );
  // the progress view stays open through signing (its last stage) and closes on any way out
  let ended = false;
  try {
    if (run.notes.length) o.reporter.note(run.notes.join('; '));
    if (run.unchanged.size) o.reporter.note(`${run.unchanged.size} of ${run.devices.length} device(s) unchanged since the previous build: not rendered`);
    for (const d of run.devices) if (run.unchanged.has(d.id)) o.reporter.done({ id: d.id, status: 'skipped', phase: 'done', message: 'unchanged since the previous build' });
    await timed(run, 'keys', () => keys(run));
    await render(run);
    if (run.fatal) await abort(run, run.fatal);
    await timed(run, 'gitops', () => gitops(run));
    const { manifest, gone } = await assembleManifest(run);
    const signed = await commit(run, manifest, gone);
    ended = true;
    const results = await o.reporter.end();
    return { results, manifest, manifestPath: path.join(o.outDir, MANIFEST_NAME), signed, skipped: run.unchanged.size, timings: run.timings };
  } finally {
    if (!ended) await o.reporter.end();
  }
}

function newRun(o: BuildOptions): BuildRun {
  return {
    o,
    fleet: o.fleet,
    stages: o.stages ?? { render: {} },
    devicesDir: path.join(o.outDir, 'devices'),
    devices: [],
    notes: [],
    inputs: new Map(),
    inputsOf: async () => new Map(),
    unchanged: new Map(),
    toRender: [],
    secrets: new Map(),
    entries: new Map(),
    staged: [],
    baseRecorded: false,
    timings: { inputs: 0, keys: 0, render: 0, images: 0, write: 0, gitops: 0, sync: 0, sign: 0, commit: 0 },
  };
}
