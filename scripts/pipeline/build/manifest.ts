// The manifest this build commits: its devices (rendered now, unchanged, or kept from the previous manifest
// with --only / --changed-since) and the device directories the commit removes.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildManifest } from '../../manifest/write.ts';
import { readManifestIfExists } from '../../manifest/read.ts';
import { MANIFEST_NAME, type Manifest, type ManifestDevice } from '../../manifest/types.ts';
import { ManifestError } from '../../util/errors.ts';
import { osManifest } from '../os/build.ts';
import type { BuildRun } from './context.ts';
import type { Fleet } from '../../inventory/fleet.ts';

const DEVICE_DIR = /^[a-z0-9][a-z0-9-]*$/;

/** The manifest to sign, and the ids whose directories go after the commit. */
export async function assembleManifest(run: BuildRun): Promise<{ manifest: Manifest; gone: string[] }> {
  const { o, fleet } = run;
  const devicesOut = [...run.entries.values()];
  const gone: string[] = [];
  let gitops = run.gitops;
  if (!o.only?.length && !o.shard) {
    // a full build owns devices/: what is no longer active (revoked, replaced, removed) goes after the commit
    const active = new Set(fleet.active.map((d) => d.id));
    for (const name of await fs.readdir(run.devicesDir).catch(() => [] as string[])) if (!active.has(name) && DEVICE_DIR.test(name)) gone.push(name);
  }
  if (o.only?.length && !o.shard) {
    const kept = await keptFromPrevious(run);
    if (kept) {
      devicesOut.push(...kept.devices);
      gone.push(...kept.gone);
      gitops = kept.gitops;
    }
  }
  const prev = run.previous?.manifest;
  const manifest = buildManifest(
    // the last publish stays on record until the next one (a rebuild does not unpublish anything)
    {
      fleet: fleet.name,
      inventorySha256: fleet.inventorySha256,
      sourceDateEpoch: o.sourceDateEpoch,
      baseImage: run.baseImage,
      gitops,
      ...optional('oci', prev?.fleet === fleet.name ? prev.oci : undefined),
      os: osManifest(fleet),
      devices: devicesOut,
    },
    fleet.devices.map((d) => d.id),
  );
  return { manifest, gone };
}

/** --only adds to a manifest of the same inventory and epoch (--changed-since: of the same fleet) instead of dropping the other devices. */
async function keptFromPrevious(run: BuildRun): Promise<{ devices: ManifestDevice[]; gone: string[]; gitops: Manifest['gitops'] } | undefined> {
  const { o, fleet } = run;
  const before = run.previous?.manifest ?? (o.secrets.verifySignature ? undefined : await previousManifest(path.join(o.outDir, MANIFEST_NAME)));
  if (!before || before.fleet !== fleet.name) return undefined;
  if (!o.incremental && anotherBuild(before, fleet, o.sourceDateEpoch)) return undefined;
  const activeIds = new Set(fleet.active.map((d) => d.id));
  // --changed-since: revoked or removed since: their files go with their manifest entries; the devices it
  // skipped were shown unchanged, so their previous artifacts stand
  const gone = o.incremental ? before.devices.filter((d) => !activeIds.has(d.id) && DEVICE_DIR.test(d.id)).map((d) => d.id) : [];
  const devices = before.devices.filter((d) => !run.entries.has(d.id) && activeIds.has(d.id));
  return { devices, gone, gitops: before.gitops };
}

/** Why a previous manifest is not a build of this fleet's inventory and epoch (--only adds only to one that is); undefined when it is. */
export function anotherBuild(prev: Manifest, fleet: Pick<Fleet, 'name' | 'inventorySha256'>, epoch: number): string | undefined {
  if (prev.fleet !== fleet.name) return `it is fleet ${prev.fleet}'s, this inventory is fleet ${fleet.name}'s`;
  if (prev.inventorySha256 !== fleet.inventorySha256)
    return `it was built from another inventory (sha256 ${prev.inventorySha256.slice(0, 12)}…, this one ${fleet.inventorySha256.slice(0, 12)}…): its entries do not describe what this inventory builds`;
  if (prev.sourceDateEpoch !== epoch) return `it was built with SOURCE_DATE_EPOCH=${prev.sourceDateEpoch}, this build with ${epoch} (set SOURCE_DATE_EPOCH=${prev.sourceDateEpoch} to add to it)`;
  return undefined;
}

/** The previous build's manifest, if there is a usable one (an unreadable one is rebuilt, not merged). */
async function previousManifest(file: string): Promise<Manifest | undefined> {
  try {
    return await readManifestIfExists(file);
  } catch (err) {
    if (err instanceof ManifestError) return undefined;
    throw err;
  }
}

/** `{key: value}`, or nothing when value is undefined (keeps manifest keys absent rather than undefined). */
export function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
