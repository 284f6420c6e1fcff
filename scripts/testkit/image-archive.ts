// A real, tiny container image archive made at run time (nothing downloaded, no checksum typed in): the
// docker-archive layout `docker save` writes and containerd's import (K3s's agent/images) reads —
// manifest.json naming the image's tag, its config blob, one layer tar — as a deterministic ustar file.
// Tests and the boot test pin what this returns, with the sha256 of the bytes written.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function header(name: string, size: number, mode = 0o644): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii'); // uid
  h.write('0000000\0', 116, 'ascii'); // gid
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii'); // mtime 0: same bytes every run
  h.write('        ', 148, 'ascii'); // checksum placeholder
  h.write('0', 156, 'ascii'); // regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** A ustar archive of the given files, in the given order. */
export function tarOf(files: { name: string; bytes: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(header(f.name, f.bytes.length), f.bytes, Buffer.alloc((512 - (f.bytes.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The docker-archive bytes for `image` (a full reference with a tag), one layer holding `content`. */
export function imageArchiveBytes(image: string, content = `edgeforge test image ${image}\n`): Buffer {
  const layer = tarOf([{ name: 'etc/edgeforge-test-image', bytes: Buffer.from(content) }]);
  const diff = sha(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', config: { Entrypoint: ['/manager'] }, rootfs: { type: 'layers', diff_ids: [`sha256:${diff}`] } }));
  const configName = `${sha(config)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [image], Layers: [`${diff}/layer.tar`] }]));
  return tarOf([
    { name: configName, bytes: config },
    { name: `${diff}/layer.tar`, bytes: layer },
    { name: 'manifest.json', bytes: manifest },
  ]);
}

/** Writes the archive for `image` to `file` and returns what the inventory pins for it. */
export async function makeImageArchive(file: string, image: string, content?: string): Promise<{ image: string; file: string; sha256: string; bytes: number }> {
  const bytes = imageArchiveBytes(image, content);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
  return { image, file, sha256: sha(bytes), bytes: bytes.length };
}
