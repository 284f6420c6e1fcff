// A derived base image with files written into its root filesystem (debugfs -w on the partition copied out,
// then put back with dd conv=notrunc; no loop device, no mount). Used for EDGEFORGE_E2E_PRELOAD_AIRGAP=1:
// the K3s airgap bundle baked into the base at the path the first-boot program reads it from, the way an
// operator would bake K3s into a base image, because the NoCloud seed does not carry the airgap bundle.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import type { BaseImageInfo } from './base-image.ts';
import { sha256File } from '../disk/base.ts';

$.verbose = false;

export async function deriveBase(base: BaseImageInfo, to: string, files: { src: string; dest: string; mode: number }[]): Promise<BaseImageInfo> {
  await fs.rm(to, { force: true });
  await $`cp --sparse=always --reflink=auto ${base.path} ${to}`;
  const part = `${to}.root`;
  const { startBytes: start, sizeBytes: size } = base.root;
  await $`dd if=${to} of=${part} bs=1M iflag=skip_bytes,count_bytes skip=${start} count=${size} conv=sparse status=none`;
  const cmds: string[] = [];
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = path.posix.dirname(f.dest).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) dirs.add(`/${parts.slice(0, i).join('/')}`);
  }
  for (const d of [...dirs].sort()) cmds.push(`mkdir ${d}`);
  for (const f of files) {
    cmds.push(`write ${f.src} ${f.dest}`, `set_inode_field ${f.dest} mode 0${(0o100000 | f.mode).toString(8)}`, `set_inode_field ${f.dest} uid 0`, `set_inode_field ${f.dest} gid 0`);
  }
  for (const d of dirs) cmds.push(`set_inode_field ${d} uid 0`, `set_inode_field ${d} gid 0`);
  const cmdFile = `${to}.debugfs`;
  await fs.writeFile(cmdFile, cmds.join('\n') + '\n');
  await $`debugfs -w -f ${cmdFile} ${part}`.nothrow(); // mkdir of an existing dir complains; the check below decides
  for (const f of files) {
    const r = await $`debugfs -R ${`cat ${f.dest}`} ${part}`.nothrow();
    if (r.stdout !== (await fs.readFile(f.src, 'latin1')) && !(await fs.readFile(f.src)).equals(Buffer.from(r.stdout, 'latin1'))) {
      // binary files do not survive the text round trip of zx: compare via dump instead
      const out = `${to}.check`;
      await $`debugfs -R ${`dump ${f.dest} ${out}`} ${part}`;
      const same = (await fs.readFile(out)).equals(await fs.readFile(f.src));
      await fs.rm(out, { force: true });
      if (!same) throw new Error(`debugfs did not write ${f.dest} correctly`);
    }
  }
  const fsck = await $`e2fsck -fn ${part}`.nothrow();
  if (fsck.exitCode !== 0) throw new Error(`the root filesystem does not check clean after writing:\n${fsck.stdout}`);
  await $`dd if=${part} of=${to} bs=1M oflag=seek_bytes seek=${start} conv=notrunc status=none`;
  await fs.rm(part, { force: true });
  await fs.rm(cmdFile, { force: true });
  return { ...base, path: to, sha256: await sha256File(to) };
}
