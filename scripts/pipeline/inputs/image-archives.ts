// The pinned container image archives on the build machine (I/O side of scripts/inventory/image-archives.ts): every
// archive must be a readable file where the inventory says, and (at build time) hash to its pin. Problems
// come back positioned (FILE:LINE:COL), all at once, so validate and build report them like any other
// inventory problem: exit 2, nothing written.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import type { ImageArchivePin } from '../../inventory/image-archives.ts';
import { PLACEHOLDER_SHA256 } from '../../render/k3s/install.ts';
import { sha256OfFile, type FileDigest } from '../../util/hash.ts';
import type { Problem } from '../../util/errors.ts';
import { archiveHolds, archiveImageRefs } from './image-refs.ts';

/** The archive's path on this machine: relative to the inventory file. */
export function archivePath(fleet: Pick<Fleet, 'file'>, inventoryPath: string, pin: Pick<ImageArchivePin, 'file'>): string {
  return path.resolve(path.dirname(path.resolve(inventoryPath || fleet.file)), pin.file);
}

/**
 * What is wrong with the archive files: missing, not a file, unreadable; with `hash`, a sha256 that is not
 * the pin (both named). Checked for every pinned archive, whatever the install mode.
 */
export async function imageArchiveProblems(
  fleet: Pick<Fleet, 'file' | 'imageArchives'>,
  inventoryPath: string,
  o: { hash: boolean; /** filled with each archive's digest (by path), so a caller need not hash it again */ digests?: Map<string, FileDigest> },
): Promise<Problem[]> {
  const out: Problem[] = [];
  for (const pin of fleet.imageArchives) {
    const file = archivePath(fleet, inventoryPath, pin);
    const what = `${pin.component} image archive ${pin.file} (${pin.image})`;
    try {
      const st = await fs.stat(file);
      if (!st.isFile()) {
        out.push({ ...pin.at.file, message: `${what}: ${file} is not a regular file` });
        continue;
      }
      if (!o.hash) {
        await (await fs.open(file, 'r')).close();
        continue;
      }
      const got = await sha256OfFile(file);
      o.digests?.set(file, got);
      if (got.sha256 !== pin.sha256) {
        const hint =
          pin.sha256 === PLACEHOLDER_SHA256
            ? " (the pin is the all-zeros placeholder: put the archive's real sha256 there)"
            : ': it is not the pinned archive; fetch it again, or if you changed versions on purpose, update the pin';
        out.push({ ...pin.at.sha256, message: `${what}: ${file} has sha256 ${got.sha256} but the inventory pins ${pin.sha256}${hint}` });
        continue;
      }
      // the archive must hold the image it is pinned for, or the kubelet would still pull that one
      const refs = await archiveImageRefs(file).catch((err: Error) => [`unreadable: ${err.message}`]);
      if (refs && !archiveHolds(refs, pin.image)) {
        out.push({
          ...pin.at.entry,
          message: `${what}: the archive holds ${refs.length ? refs.join(', ') : 'no named image (no RepoTags in manifest.json, no name annotation in index.json)'}, not ${pin.image}; save it with the image's name (skopeo copy docker://${pin.image} docker-archive:FILE:${pin.image})`,
        });
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
      out.push({
        ...pin.at.file,
        message: `${what}: cannot read ${file} (${why}); put the archive there (e.g. \`skopeo copy docker://${pin.image} docker-archive:${pin.file}:${pin.image}\` on a machine with access) — nothing is downloaded at build time`,
      });
    }
  }
  return out;
}

/** Warnings for validate: all-zeros placeholder pins, and archives an online install never delivers. */
export function imageArchiveWarnings(fleet: Pick<Fleet, 'k3s' | 'imageArchives'>): string[] {
  const out: string[] = [];
  const placeholders = fleet.imageArchives.filter((p) => p.sha256 === PLACEHOLDER_SHA256);
  if (placeholders.length) {
    out.push(
      `${placeholders.length} image archive pin(s) are the all-zeros placeholder (line ${placeholders.map((p) => p.at.sha256.line).join(', ')}): the build refuses them until you pin each archive — run: sha256sum ${placeholders.map((p) => p.file).join(' ')}`,
    );
  }
  if (fleet.imageArchives.length && fleet.k3s.install.mode !== 'airgap') {
    out.push(
      `${fleet.imageArchives.length} image archive(s) are pinned, but k3s.install.mode is ${fleet.k3s.install.mode}: only an airgap install delivers them; online devices pull these images from their registries (or the site's registry mirror)`,
    );
  }
  return out;
}
