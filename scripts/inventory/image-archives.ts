// The fleet's pinned container image archives, from every component that runs containers (one home for the
// concept): each component names where in the inventory it lists its archives, and everything downstream —
// the build's verification and staging, the K3s airgap partition, the first-boot program's check and
// placement, validate and plan — works on the one merged list. A component that needs its images on devices
// without the internet adds one row to IMAGE_ARCHIVE_SOURCES (and its list to the schema, as ImageArchiveSchema).
import { K3S_AIRGAP } from '../device/layout.ts';
import type { ImageArchive, Inventory } from './schema.ts';
import type { Locator, PathKey } from './problems.ts';
import type { Problem } from '../util/errors.ts';

export interface ImageArchiveSource {
  /** who needs these images, as the messages and the plan say it */
  component: string;
  /** where the list sits in the inventory (for FILE:LINE:COL) */
  path: PathKey[];
  list(inv: Inventory): ImageArchive[] | undefined;
}

export const IMAGE_ARCHIVE_SOURCES: ImageArchiveSource[] = [
  {
    component: 'flux',
    path: ['gitops', 'flux', 'install', 'images'],
    list: (inv) => (inv.gitops.flux.install?.mode === 'bundle' ? inv.gitops.flux.install.images : undefined),
  },
  {
    // the K3s upgrade path (docs/day2.md): system-upgrade-controller, kubectl, k3s-upgrade
    component: 'k3s-upgrade',
    path: ['k3s', 'upgrade', 'images'],
    list: (inv) => inv.k3s.upgrade?.images,
  },
];

/** Names the K3s airgap set already uses on the device and on the EFK3S partition (scripts/render/device.ts). */
const K3S_AIRGAP_NAMES: readonly string[] = Object.values(K3S_AIRGAP);

/** One pinned archive, resolved: `name` is the file's name on the device (and on the K3s partition). */
export interface ImageArchivePin {
  component: string;
  image: string;
  /** as written: relative to the inventory file */
  file: string;
  /** the file's base name: one flat directory on the device, so it must be unique fleet-wide */
  name: string;
  sha256: string;
  /** positions of the entry, its file and its sha256 (for problems found later: a missing file, a wrong hash) */
  at: { entry: Position; file: Position; sha256: Position };
}
export interface Position {
  line: number;
  col: number;
}

export function archiveName(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1);
}

/** Every component's archives in table order, and what is wrong across them (names, duplicates). */
export function resolveImageArchives(inv: Inventory, loc: Locator): { pins: ImageArchivePin[]; lists: Record<string, Position>; problems: Problem[] } {
  const pins: ImageArchivePin[] = [];
  const lists: Record<string, Position> = {};
  const problems: Problem[] = [];
  const byName = new Map<string, ImageArchivePin>();
  const byImage = new Map<string, ImageArchivePin>();
  for (const src of IMAGE_ARCHIVE_SOURCES) {
    // the list, or where it would go (the nearest key that exists)
    lists[src.component] = loc.pos(src.path);
    (src.list(inv) ?? []).forEach((a, i) => {
      const p = [...src.path, i];
      const pin: ImageArchivePin = {
        component: src.component,
        image: a.image,
        file: a.file,
        name: archiveName(a.file),
        sha256: a.sha256,
        at: { entry: loc.pos(p), file: loc.pos([...p, 'file']), sha256: loc.pos([...p, 'sha256']) },
      };
      // FAT (the K3s partition) compares names without case
      const key = pin.name.toLowerCase();
      const same = byName.get(key);
      if (same)
        problems.push({
          ...pin.at.file,
          message: `image archive name "${pin.name}" is already used at line ${same.at.file.line} (${same.component}): archives share one directory on the device, so their file names must differ`,
        });
      else if (K3S_AIRGAP_NAMES.includes(key)) problems.push({ ...pin.at.file, message: `image archive name "${pin.name}" is the name of one of K3s's own airgap files; rename the archive` });
      else byName.set(key, pin);
      const dup = byImage.get(pin.image);
      if (dup) problems.push({ ...pin.at.entry, message: `image ${pin.image} is already pinned at line ${dup.at.entry.line} (${dup.component}): one archive per image` });
      else byImage.set(pin.image, pin);
      pins.push(pin);
    });
  }
  return { pins, lists, problems };
}

/** The registry host of a full image reference (the schema makes every pinned reference name one). */
export function imageRegistry(image: string): string {
  return image.slice(0, image.indexOf('/'));
}
