// Checks with the real tools on a partition inside an image file.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

const dumps = new Map<string, Map<string, Buffer>>();

function walkLocal(root: string, rel = '', out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) walkLocal(root, p, out);
    else out.set(p, readFileSync(path.join(root, p)));
  }
  return out;
}

/**
 * Every file of a FAT filesystem as mtools reads it (one `mcopy -s` per filesystem state, so tests spawn few
 * processes). Keyed by the long names mtools shows.
 */
export function mdump(file: string, offset: number, dir: string): Map<string, Buffer> {
  const st = statSync(file);
  const key = `${file}@${offset}@${st.mtimeMs}@${st.size}`;
  let m = dumps.get(key);
  if (!m) {
    const out = mkdtempSync(path.join(dir, 'mdump-'));
    run('mcopy', ['-s', '-n', '-i', `${file}@@${offset}`, '::*', out]);
    m = walkLocal(out);
    dumps.set(key, m);
  }
  return m;
}

/** One file read back through mtools (byte-exact). */
export function mcopyOut(file: string, offset: number, p: string, dir: string): Buffer {
  const m = mdump(file, offset, dir);
  const hit = m.get(p) ?? [...m].find(([k]) => k.toUpperCase() === p.toUpperCase())?.[1];
  if (!hit) throw new Error(`mtools does not find ${p} in ${file}@${offset}`);
  return hit;
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
