// The NoCloud seed image: a bare FAT filesystem (no partition table) labelled CIDATA holding user-data,
// meta-data, network-config and anything else handed in. Pure: same files + epoch -> same bytes.
import { createHash } from 'node:crypto';
import { MemoryDev } from './block.ts';
import { FatFs } from './fat/fs.ts';
import { FatFullError } from './fat/table.ts';
import { mkfsFat } from './fat/mkfs.ts';
import { SEED_LABEL } from '../device/layout.ts';

export interface SeedFile {
  /** path inside the image, forward slashes; subdirectories are created */
  name: string;
  bytes: Uint8Array;
}

export interface SeedImageOptions {
  epoch: number;
  label?: string;
}

const MIB = 1024 * 1024;

export function sortedSeedFiles(files: SeedFile[]): SeedFile[] {
  const seen = new Set<string>();
  for (const f of files) {
    const k = f.name.toUpperCase();
    if (seen.has(k)) throw new Error(`seed file given twice (FAT names ignore case): ${f.name}`);
    seen.add(k);
  }
  return [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A volume id derived from the contents, so two devices' seed images are told apart but rebuilds agree. */
export function seedVolumeId(files: SeedFile[], label: string): number {
  const h = createHash('sha256').update(label);
  for (const f of files) h.update(`${f.name}\0${f.bytes.length}\0`).update(f.bytes);
  return h.digest().readUInt32LE(0);
}

export async function makeSeedImage(files: SeedFile[], opts: SeedImageOptions): Promise<Uint8Array> {
  const label = opts.label ?? SEED_LABEL;
  const sorted = sortedSeedFiles(files);
  const payload = sorted.reduce((n, f) => n + Math.ceil(f.bytes.length / 16384) * 16384, 0);
  // at least 1 MiB; grow and start over if the estimate was short (it never is for seed-sized files)
  let size = Math.max(MIB, Math.ceil((payload * 1.1 + 256 * 1024) / MIB) * MIB);
  for (;;) {
    const img = new Uint8Array(size);
    const dev = new MemoryDev(img);
    await mkfsFat(dev, { label, volumeId: seedVolumeId(sorted, label), epoch: opts.epoch });
    const fs = await FatFs.open(dev, { epoch: opts.epoch });
    try {
      for (const f of sorted) await fs.writeFile(f.name, f.bytes);
    } catch (err) {
      if (err instanceof FatFullError) {
        size *= 2;
        continue;
      }
      throw err;
    }
    await fs.flush();
    return img;
  }
}
