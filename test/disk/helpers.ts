// Checks with the real tools on a partition inside an image file.
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './fixtures.ts';

const made: string[] = [];

export function tmpDir(name: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), `ef-disk-${name}-`));
  made.push(d);
  return d;
}

/** afterAll(cleanup): removes the temp dirs a test file made (set KEEP_DISK_FIXTURES=1 to keep them). */
export function cleanup(): void {
  if (process.env.KEEP_DISK_FIXTURES) return;
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function readRange(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** fsck.vfat -n on a partition (copied out: fsck.vfat takes no offset). Throws with its output on failure. */
export function fsckFat(file: string, offset: number, length: number, dir: string): string {
  const part = path.join(dir, `part-${offset}.img`);
  writeFileSync(part, readRange(file, offset, length));
  const out = run('fsck.vfat', ['-n', part]); // exits non-zero on any problem
  const lines = out.trim().split('\n');
  if (lines.length !== 2) throw new Error(`fsck.vfat reported more than its summary:\n${out}`);
  return out;
}

export function mcopyOut(file: string, offset: number, p: string, dir: string): Buffer {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  run('mcopy', ['-n', '-i', `${file}@@${offset}`, `::${p}`, out]);
  return readFileSync(out);
}

/** Every path in the filesystem as mtools sees it (long names; directories end in '/'), sorted. */
export function mlistAll(file: string, offset: number): string[] {
  const out = run('mdir', ['-/', '-b', '-i', `${file}@@${offset}`, '::']);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^::\//, ''))
    .sort();
}
