// What `edgeforge build` does for OS updates (docs/os-updates.md): the A/B base the deltas apply to (with
// --base-image), the certificate every A/B device's keyring holds, and the manifest's record of every ring's
// release and bundle digest.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import type { OsLayout } from '../../inventory/schema.ts';
import { isAbDevice } from '../../inventory/os.ts';
import { FileDev } from '../../disk/block.ts';
import { prepareBase, type PreparedBase } from '../../disk/base.ts';
import { deriveAbBase } from '../../disk/ab-base.ts';
import { loadProfile } from '../../disk/profiles.ts';
import { readPartitionTable } from '../../disk/partitions.ts';
import { UserError } from '../../util/errors.ts';
import { readOsCert } from '../../keys/os-key.ts';
import { ringOf } from '../../render/day2/rings.ts';
import { osRingVersion, RINGS } from '../../render/os/ring.ts';
import type { AbBaseManifest, OsManifest } from '../../manifest/types.ts';

/** The fleet's OS-update certificate for the devices' keyrings; undefined when the fleet has no os:. */
export async function osCertificate(fleet: Fleet, keysDir: string): Promise<string | undefined> {
  if (!fleet.os) return undefined;
  const cert = await readOsCert(keysDir);
  if (!cert)
    throw new UserError(
      `${fleet.file} has os:, but ${path.join(keysDir, 'os-update')}/ holds no OS-update key: \`edgeforge os bundle\` makes it with the first bundle (the bundles os.releases names are signed with it). Nothing was written.`,
    );
  return cert;
}

/** Every ring's release and, for each layout its A/B devices use, the bundle's digest the inventory pins. */
export function osManifest(fleet: Fleet): OsManifest | undefined {
  const os = fleet.os;
  if (!os) return undefined;
  const ab = fleet.active.filter((d) => isAbDevice(fleet, d));
  const rings = RINGS.filter((r) => ab.some((d) => ringOf(d) === r)).map((ring) => ({ ring, version: osRingVersion(os, ring) }));
  const bundles: OsManifest['bundles'] = [];
  for (const { ring, version } of rings) {
    for (const layout of new Set(ab.filter((d) => ringOf(d) === ring).map((d) => d.profile.baseImage.layout))) {
      const b = os.releases[version]?.[layout];
      if (b && !bundles.some((x) => x.version === version && x.layout === layout)) bundles.push({ version, layout, file: path.posix.basename(b.file), sha256: b.sha256 });
    }
  }
  bundles.sort((a, b) => (a.version + a.layout < b.version + b.layout ? -1 : 1));
  return { rings, bundles };
}

/**
 * The A/B base for the devices this build gives a disk delta: the input rearranged into two root slots, slot A
 * holding the release os.releases says was made from this very image. Undefined when none of them has OS updates.
 */
export async function abBaseFor(
  fleet: Fleet,
  devices: ResolvedDevice[],
  base: { given: string; path: string; sha256: string },
  outDir: string,
): Promise<{ base: PreparedBase; manifest: AbBaseManifest; reused: boolean } | undefined> {
  const os = fleet.os;
  if (!os) return undefined;
  const input = await prepareBase({ path: base.path, sha256: base.sha256 });
  const fh = await fs.open(input.rawPath, 'r');
  let layout: OsLayout;
  try {
    layout = (await readPartitionTable(new FileDev(fh, input.size, true))).scheme === 'gpt' ? 'uefi-gpt' : 'raspi-mbr';
  } finally {
    await fh.close();
  }
  const ab = devices.filter((d) => d.profile.baseImage.layout === layout && isAbDevice(fleet, d));
  if (!ab.length) return undefined;
  const release = Object.entries(os.releases).find(([, r]) => r[layout]?.baseImageSha256 === base.sha256);
  if (!release) {
    throw new UserError(
      `--base-image ${base.given} (sha256 ${base.sha256}) is not the base of any release in os.releases, so the cards would not know which release they start on: ` +
        `make its bundle (\`edgeforge os bundle --base-image ${base.given} --version V\`) and add the lines it prints. Nothing was written.`,
    );
  }
  const cardBytes = Math.min(...ab.map((d) => d.profile.storage.sizeGB)) * 1e9;
  let d;
  try {
    d = await deriveAbBase({ base: input, profile: await loadProfile(layout), fleet: fleet.name, version: release[0], slotBytes: os.slotMiB ? os.slotMiB * 1048576 : undefined, cardBytes, outDir });
  } catch (err) {
    throw new UserError(`cannot make the A/B layout from ${base.given}: ${(err as Error).message}. Nothing was written for the devices.`);
  }
  return { base: d.base, reused: d.reused, manifest: { path: d.info.path, sha256: d.info.sha256, bytes: d.info.size, layout, version: release[0] } };
}
