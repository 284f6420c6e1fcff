// Phase inputs: what the build reads besides the inventory and the keys, verified before anything is written:
// the --base-image file (against the profiles' pins), the K3s airgap bundle (staged once), and the bases the
// disk deltas apply to: the A/B base with two root slots (OS updates, docs/os-updates.md) and the fleet base
// holding the airgap files on one partition (not in every device's delta). A wrong checksum stops the build.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sha256OfFile } from '../../util/hash.ts';
import { UserError } from '../../util/errors.ts';
import { sweepTempFiles } from '../../util/atomic.ts';
import { sweepDevices } from '../write.ts';
import { airgapFleetBase, stageAirgap } from '../inputs/airgap.ts';
import { abBaseFor } from '../os/build.ts';
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { outputError, type BuildRun } from './context.ts';

export async function inputs(run: BuildRun): Promise<void> {
  const { o, fleet } = run;
  if (o.baseImage) run.baseImage = await checkBaseImage(run, o.baseImage);
  try {
    await fs.mkdir(o.outDir, { recursive: true });
    // what a killed build left: temp files (not inside devices/: pipeline/write.ts sweeps those directories)
    await sweepTempFiles(o.outDir, (name) => name === 'devices');
    await sweepDevices(run.devicesDir);
  } catch (err) {
    throw outputError(o.outDir, err);
  }
  run.airgap = await stageAirgap(fleet, o.inventoryPath, o.outDir);
  if (o.baseImage && run.baseImage) await deriveBases(run, o.baseImage, run.baseImage.sha256);
}

/** The file exists and, where the profiles pin a base image, it is the pinned one (else nothing is written). */
async function checkBaseImage(run: BuildRun, given: { given: string; path: string }): Promise<{ path: string; sha256: string }> {
  const st = await fs.stat(given.path).catch(() => undefined);
  if (!st?.isFile()) throw new UserError(`--base-image ${given.given}: no such file. Nothing was written.`);
  const sha256 = (await sha256OfFile(given.path)).sha256;
  const pins = profilePins(run.devices);
  const layoutsWanted = new Set(run.devices.map((d) => d.profile.baseImage.layout));
  if (pins.size && !pins.has(sha256) && layoutsWanted.size === 1) {
    const [pin, profiles] = [...pins.entries()][0];
    throw new UserError(
      `--base-image ${given.given} has sha256 ${sha256}, but profile ${[...new Set(profiles)].join(', ')} pins baseImage.sha256 ${pin} in ${run.fleet.file}. ` +
        'Use the pinned image, or update the pin after reviewing the new image. Nothing was written.',
    );
  }
  return { path: given.given, sha256 };
}

/** pinned base image sha256 -> the profiles pinning it */
function profilePins(devices: ResolvedDevice[]): Map<string, string[]> {
  const pins = new Map<string, string[]>();
  for (const d of devices) {
    const pin = d.profile.baseImage.sha256;
    if (pin) pins.set(pin, [...(pins.get(pin) ?? []), d.profileName]);
  }
  return pins;
}

/** OS updates: the cards get two root slots; the K3s airgap partition and the deltas go on that. */
async function deriveBases(run: BuildRun, given: { given: string; path: string }, sha256: string): Promise<void> {
  const ab = await abBaseFor(run.fleet, run.devices, { ...given, sha256 }, run.o.outDir);
  if (ab) {
    run.diskBase = ab.base;
    run.baseImage = { ...run.baseImage!, abBase: ab.manifest };
    run.notes.push(`A/B base ${ab.manifest.path} (${ab.reused ? 'reused' : 'derived'}): slot A holds OS release ${ab.manifest.version}`);
  }
  if (!run.airgap) return;
  const fb = await airgapFleetBase(run.airgap, { path: given.path, sha256 }, run.o.outDir, run.diskBase);
  run.diskBase = fb.base;
  run.baseImage = { ...run.baseImage!, fleetBase: fb.manifest };
  const p = fb.manifest.airgapPartition;
  run.notes.push(`fleet base ${fb.manifest.path} (${fb.reused ? 'reused' : 'derived'}): K3s airgap files on partition ${p.number} (${p.label}, ${Math.round(p.size / 1048576)} MiB)`);
}
