// The K3s airgap bundle (binary, images, install script) from the inventory's k3s.install.bundle directory:
// verified against the pinned sha256 at BUILD time (a wrong file never reaches a device), staged once under
// OUT/k3s-airgap/, and hard-linked into each device's bundle/k3s/airgap/ (a copy where links cannot cross)
// for provision. With --base-image they also go into the fleet base's EFK3S partition (airgapFleetBase), which
// is how a device booted from its image gets them (first boot mounts that partition read-only).
import { K3S_AIRGAP } from '../../device/layout.ts';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import { InventoryError, UserError } from '../../util/errors.ts';
import { deliveredImageArchives } from '../../render/k3s/images.ts';
import { archivePath, imageArchiveProblems } from './images.ts';
import { airgapFiles } from '../../render/device.ts';
import { tempPathFor } from '../../util/atomic.ts';
import { sha256OfFile, type FileDigest } from '../../util/hash.ts';
import { prepareBase, type PreparedBase } from '../../disk/base.ts';
import { deriveFleetBase } from '../../disk/fleet-base.ts';
import type { FleetBaseManifest } from '../../manifest/types.ts';

export interface StagedAirgap {
  files: { name: string; sha256: string; bytes: number; staged: string }[];
}

/** file name -> its key under k3s.install.sha256 */
const PIN_KEY: Record<string, string> = Object.fromEntries(Object.entries(K3S_AIRGAP).map(([key, name]) => [name, key]));

/** Verify the bundle (and the pinned image archives) and stage it in OUT. Returns nothing to do for online installs. */
export async function stageAirgap(fleet: Fleet, inventoryPath: string, outDir: string): Promise<StagedAirgap | undefined> {
  const inst = fleet.k3s.install;
  if (inst.mode !== 'airgap') return undefined;
  const dir = path.resolve(path.dirname(inventoryPath), inst.bundle);
  // verify everything before writing anything: a wrong file fails the build with nothing written
  const verified: { name: string; sha256: string; bytes: number; src: string }[] = [];
  const archives = new Map(deliveredImageArchives(fleet).map((p) => [p.name, p]));
  // the archives are hashed once, here (they are the large files: hundreds of MiB each)
  const digests = new Map<string, FileDigest>();
  const archiveProblems = await imageArchiveProblems(fleet, inventoryPath, { hash: true, digests });
  if (archiveProblems.length) throw new InventoryError(fleet.file, archiveProblems.map((p) => ({ ...p, message: `${p.message}. Nothing was written.` })));
  for (const { name, sha256 } of airgapFiles(fleet)) {
    const pin = archives.get(name);
    const src = pin ? archivePath(fleet, inventoryPath, pin) : path.join(dir, name);
    let got;
    try {
      got = digests.get(src) ?? (await sha256OfFile(src));
    } catch (err) {
      throw new UserError(`K3s airgap bundle: cannot read ${src} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); k3s.install.bundle in ${fleet.file} must name a directory holding ${Object.values(K3S_AIRGAP).join(', ')} of K3s ${fleet.k3s.version}. Nothing was written.`);
    }
    if (got.sha256 !== sha256) {
      throw new UserError(
        `K3s airgap bundle: ${src} has sha256 ${got.sha256} but the inventory pins ${sha256} (${pin ? `the ${pin.component} image archive for ${pin.image}, line ${pin.at.sha256.line}` : `k3s.install.sha256.${PIN_KEY[name]}`} in ${fleet.file}). ` +
          `It is not the pinned ${pin ? 'archive' : `K3s ${fleet.k3s.version} file`}: download it again, or if you changed versions on purpose, update the pin. Nothing was written.`,
      );
    }
    verified.push({ name, sha256, bytes: got.bytes, src });
  }
  const staged: StagedAirgap['files'] = [];
  for (const { name, sha256, bytes, src } of verified) {
    const target = path.join(outDir, 'k3s-airgap', name);
    const have = await sha256OfFile(target).catch(() => undefined);
    if (have?.sha256 !== sha256) {
      await fs.mkdir(path.dirname(target), { recursive: true });
      const tmp = tempPathFor(target);
      await fs.copyFile(src, tmp);
      await fs.chmod(tmp, 0o644);
      await fs.rename(tmp, target);
    }
    staged.push({ name, sha256, bytes, staged: target });
  }
  return { files: staged };
}

/** Put the staged files into one device's bundle (hard links: 2,000 devices do not need 2,000 copies). */
export async function linkAirgapInto(staged: StagedAirgap, deviceDir: string): Promise<{ path: string; sha256: string; bytes: number }[]> {
  const out = [];
  for (const f of staged.files) {
    const rel = `bundle/k3s/airgap/${f.name}`;
    const target = path.join(deviceDir, rel);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const [a, b] = await Promise.all([fs.stat(f.staged), fs.stat(target).catch(() => undefined)]);
    if (!b || a.ino !== b.ino || a.dev !== b.dev) {
      const tmp = tempPathFor(target);
      try {
        await fs.link(f.staged, tmp);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
        await fs.copyFile(f.staged, tmp);
      }
      await fs.rename(tmp, target);
    }
    out.push({ path: rel, sha256: f.sha256, bytes: f.bytes });
  }
  return out;
}

/**
 * With a base image and an airgap install: the fleet base (the base + one FAT32 partition EFK3S holding the
 * three verified airgap files), derived once under OUT/base/ and reused while the inputs are the same. The
 * returned PreparedBase is what every device's delta, the base record, materialize and flash use.
 */
export async function airgapFleetBase(
  staged: StagedAirgap,
  base: { path: string; sha256: string },
  outDir: string,
): Promise<{ base: PreparedBase; manifest: FleetBaseManifest; reused: boolean }> {
  const input = await prepareBase({ path: base.path, sha256: base.sha256 });
  let d;
  try {
    d = await deriveFleetBase({ base: input, files: staged.files.map((f) => ({ name: f.name, path: f.staged, sha256: f.sha256, bytes: f.bytes })), outDir });
  } catch (err) {
    throw new UserError(`cannot add the K3s airgap partition to the base image ${base.path}: ${(err as Error).message}. Nothing was written for the devices.`);
  }
  const p = d.info.partition;
  return {
    base: d.base,
    reused: d.reused,
    manifest: { path: d.info.path, sha256: d.info.sha256, bytes: d.info.size, airgapPartition: { number: p.number, scheme: p.scheme, start: p.start, size: p.size, name: p.name, label: p.label } },
  };
}
