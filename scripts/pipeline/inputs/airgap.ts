// The K3s airgap bundles (binary, images, install script) from the inventory's k3s.install.bundle directory
// and, during a rollout, k3s.install.canary.bundle (the canary ring's release): verified against the pinned
// sha256 at BUILD time (a wrong file never reaches a device), staged once under OUT/k3s-airgap/ (the canary's
// in its release's directory), and hard-linked into each device's bundle/k3s/airgap/ — its own ring's release
// — for provision. With --base-image they also go into the fleet base's EFK3S partition (airgapFleetBase),
// which is how a device booted from its image gets them (first boot mounts that partition read-only and takes
// its ring's directory).
import { K3S_AIRGAP } from '../../device/layout.ts';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import { InventoryError, UserError } from '../../util/errors.ts';
import { deliveredImageArchives } from '../../render/k3s/images.ts';
import { archivePath, imageArchiveProblems } from './image-archives.ts';
import { fleetAirgapReleases, type Ring } from '../../render/day2/rings.ts';
import { tempPathFor } from '../../util/atomic.ts';
import { sha256OfFile, type FileDigest } from '../../util/hash.ts';
import { prepareBase, type PreparedBase } from '../../disk/base.ts';
import { deriveFleetBase } from '../../disk/fleet-base.ts';
import type { FleetBaseManifest } from '../../manifest/types.ts';

export interface StagedAirgap {
  files: {
    name: string;
    sha256: string;
    bytes: number;
    staged: string;
    /** directory on the K3s partition ('' = root): a canary release's during a rollout */
    dir: string;
    /** the ring whose devices install it; undefined = every device (the image archives) */
    ring?: Ring;
  }[];
}

/**
 * Verify the K3s airgap files of every release the fleet's new devices install (the stable ring's and, during
 * a rollout, the canary ring's: day2/rings.ts) and the pinned image archives, then stage them in OUT.
 * Returns nothing to do for online installs.
 */
export async function stageAirgap(fleet: Fleet, inventoryPath: string, outDir: string): Promise<StagedAirgap | undefined> {
  const releases = fleetAirgapReleases(fleet);
  if (!releases.length) return undefined;
  // verify everything before writing anything: a wrong file fails the build with nothing written
  const verified: (Omit<StagedAirgap['files'][number], 'staged'> & { src: string })[] = [];
  // the archives are hashed once, here (they are the large files: hundreds of MiB each)
  const digests = new Map<string, FileDigest>();
  const archiveProblems = await imageArchiveProblems(fleet, inventoryPath, { hash: true, digests });
  if (archiveProblems.length)
    throw new InventoryError(
      fleet.file,
      archiveProblems.map((p) => ({ ...p, message: `${p.message}. Nothing was written.` })),
    );
  for (const r of releases) {
    const dir = path.resolve(path.dirname(inventoryPath), r.bundle);
    for (const [key, name] of Object.entries(K3S_AIRGAP) as [keyof typeof K3S_AIRGAP, string][]) {
      const src = path.join(dir, name);
      const sha256 = r.sha256[key];
      let got;
      try {
        got = await sha256OfFile(src);
      } catch (err) {
        throw new UserError(
          `K3s airgap bundle: cannot read ${src} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${r.key}.bundle in ${fleet.file} must name a directory holding ${Object.values(K3S_AIRGAP).join(', ')} of K3s ${r.version} (the ${r.ring} ring's release). Nothing was written.`,
        );
      }
      if (got.sha256 !== sha256) {
        throw new UserError(
          `K3s airgap bundle: ${src} has sha256 ${got.sha256} but the inventory pins ${sha256} (${r.key}.sha256.${key} in ${fleet.file}). ` +
            `It is not the pinned K3s ${r.version} file: download it again, or if you changed versions on purpose, update the pin. Nothing was written.`,
        );
      }
      verified.push({ name, sha256, bytes: got.bytes, src, dir: r.dir, ring: r.ring });
    }
  }
  // already checked against their pins by imageArchiveProblems, which hashed each one into `digests`
  for (const pin of deliveredImageArchives(fleet)) {
    const src = archivePath(fleet, inventoryPath, pin);
    const got = digests.get(src) ?? (await sha256OfFile(src));
    verified.push({ name: pin.name, sha256: pin.sha256, bytes: got.bytes, src, dir: '' });
  }
  const staged: StagedAirgap['files'] = [];
  for (const { src, ...f } of verified) {
    const target = path.join(outDir, 'k3s-airgap', f.dir, f.name);
    const have = await sha256OfFile(target).catch(() => undefined);
    if (have?.sha256 !== f.sha256) {
      await fs.mkdir(path.dirname(target), { recursive: true });
      const tmp = tempPathFor(target);
      await fs.copyFile(src, tmp);
      await fs.chmod(tmp, 0o644);
      await fs.rename(tmp, target);
    }
    staged.push({ ...f, staged: target });
  }
  // an earlier rollout's release directory (promoted or abandoned since) is not needed any more
  const dirs = new Set(releases.map((r) => r.dir).filter(Boolean));
  for (const e of await fs.readdir(path.join(outDir, 'k3s-airgap'), { withFileTypes: true })) {
    if (e.isDirectory() && !dirs.has(e.name) && /^v\d+\.\d+\.\d+-k3s\d+$/.test(e.name)) await fs.rm(path.join(outDir, 'k3s-airgap', e.name), { recursive: true, force: true });
  }
  return { files: staged };
}

/**
 * Put the staged files one device installs into its bundle: the K3s release it installs (`release`: the ring
 * whose files they are, ringAirgap(fleet, ringOf(d)).ring) and the image archives, all in bundle/k3s/airgap/
 * (hard links: 2,000 devices do not need 2,000 copies).
 */
export async function linkAirgapInto(staged: StagedAirgap, deviceDir: string, release: Ring): Promise<{ path: string; sha256: string; bytes: number }[]> {
  const out = [];
  for (const f of staged.files) {
    if (f.ring !== undefined && f.ring !== release) continue;
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
 * verified airgap files: each release's three K3s files and the image archives), derived once under OUT/base/ and reused while the inputs are the same. The
 * returned PreparedBase is what every device's delta, the base record, materialize and flash use.
 */
export async function airgapFleetBase(
  staged: StagedAirgap,
  base: { path: string; sha256: string },
  outDir: string,
  /** what to add the partition to when it is not the input itself (the A/B base) */
  prepared?: PreparedBase,
): Promise<{ base: PreparedBase; manifest: FleetBaseManifest; reused: boolean }> {
  const input = prepared ?? (await prepareBase({ path: base.path, sha256: base.sha256 }));
  let d;
  try {
    d = await deriveFleetBase({ base: input, files: staged.files.map((f) => ({ name: f.dir ? `${f.dir}/${f.name}` : f.name, path: f.staged, sha256: f.sha256, bytes: f.bytes })), outDir });
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
