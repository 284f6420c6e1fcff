// A plain NoCloud seed volume (FAT, label CIDATA) made with dosfstools + mtools: the test's own seed, used to
// prove the base image boots and runs cloud-init before anything edgeforge made is involved.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';

$.verbose = false;

export async function makeSeedImage(file: string, files: Record<string, string>): Promise<void> {
  await fs.rm(file, { force: true });
  await $`mkfs.vfat -n CIDATA -C ${file} 1024`;
  const dir = await fs.mkdtemp(path.join(path.dirname(file), '.seed-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      const f = path.join(dir, name);
      await fs.writeFile(f, content);
      await $`mcopy -o -i ${file} ${f} ${`::/${name}`}`;
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** A sparse copy of an image (reflinked where the filesystem can), so the base in the cache is never booted. */
export async function copyImage(from: string, to: string): Promise<void> {
  await fs.rm(to, { force: true });
  await $`cp --sparse=always --reflink=auto ${from} ${to}`;
}
