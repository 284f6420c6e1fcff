// Writing one device's files into OUT/devices/<id>/: each file atomically (temp + rename) with its mode,
// unchanged files left alone (stable mtimes for rsync and flashing stations), and files a previous build
// left that this build no longer renders removed (a dropped registries.yaml must not linger).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';

export interface FileToWrite {
  path: string;
  bytes: Uint8Array;
  mode: number;
}

export async function writeDeviceDir(deviceDir: string, files: FileToWrite[], keep: Set<string> = new Set()): Promise<void> {
  for (const f of files) await writeFileAtomic(path.join(deviceDir, f.path), f.bytes, { mode: f.mode, skipIfSame: true });
  const wanted = new Set([...files.map((f) => f.path), ...keep]);
  await removeStale(deviceDir, '', wanted);
}

async function removeStale(root: string, rel: string, wanted: Set<string>): Promise<boolean> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
  } catch {
    return true;
  }
  let empty = true;
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (await removeStale(root, r, wanted)) await fs.rmdir(path.join(root, r)).catch(() => undefined);
      else empty = false;
    } else if (!wanted.has(r)) await fs.rm(path.join(root, r), { force: true });
    else empty = false;
  }
  return empty;
}
