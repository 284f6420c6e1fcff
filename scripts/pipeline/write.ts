// Writing OUT/devices/<id>/ crash-safe without an fsync per file (the build's durability is paid once):
//
//   1. stage: the device's complete new directory is written beside the live one, as
//      devices/.edgeforge-new-<rand>-<id>/. A file holding exactly the bytes and mode of the live one is hard-linked
//      from it (no data written, its mtime kept for rsync and flashing stations); large files (seed.img) are
//      written sparse. Nothing live is touched, so a full disk or a kill here leaves the previous build whole.
//   2. the build syncs the output filesystem once (syncOutput), prepares the manifest, then
//   3. swaps each staged directory in: live -> devices/.edgeforge-old-<rand>-<id>, staged -> devices/<id>
//      (two renames), and writes the manifest last (the commit point, pipeline/build.ts);
//   4. removes the retired directories.
// A kill between the two renames of step 3 leaves devices/<id> missing (verify says so); the next build's
// sweep renames the retired directory back before doing anything else.
//
// Each live directory holds .edgeforge-inputs, the inputs hash (pipeline/inputs.ts) of what it was rendered
// from. It is written inside the staged directory, so it always describes the files beside it: a rebuild skips
// a device only when this stamp, the previous manifest and the current inputs all agree.
import { promises as fs, constants } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export const INPUTS_STAMP = '.edgeforge-inputs';
const NEW = '.edgeforge-new-';
const OLD = '.edgeforge-old-';
/** files at least this large are written sparse: only their non-zero 4 KiB blocks */
const SPARSE_FROM = 64 * 1024;
const BLOCK = 4096;

export interface FileToWrite {
  path: string;
  bytes: Uint8Array;
  mode: number;
}

export interface StagedDevice {
  id: string;
  /** the staged directory (absolute) */
  staged: string;
  /** devices/<id> (absolute) */
  live: string;
  /** files hard-linked from the live directory (unchanged) and written anew */
  linked: number;
  written: number;
}

/** Where a device's directory is staged; link in extra files (airgap) with `then`. */
export function stagingDir(devicesDir: string, id: string): string {
  return path.join(devicesDir, `${NEW}${randomBytes(4).toString('hex')}-${id}`);
}

async function sameFile(live: string, f: FileToWrite): Promise<boolean> {
  const st = await fs.stat(live).catch(() => undefined);
  if (!st?.isFile() || st.size !== f.bytes.length || (st.mode & 0o777) !== f.mode) return false;
  const old = await fs.readFile(live);
  return Buffer.compare(old, Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength)) === 0;
}

/** Write `bytes` to a new file; holes where whole blocks are zero when the file is large. No fsync (syncOutput). */
export async function writeNewFile(file: string, bytes: Uint8Array, mode: number): Promise<void> {
  const fh = await fs.open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    await writeInto(fh, bytes, mode);
  } catch (err) {
    (err as NodeJS.ErrnoException).path ??= file; // a failed write() does not say which file
    throw err;
  } finally {
    await fh.close();
  }
}

async function writeInto(fh: import('node:fs').promises.FileHandle, bytes: Uint8Array, mode: number): Promise<void> {
  if (bytes.length < SPARSE_FROM) await fh.writeFile(bytes);
  else {
    let start = -1; // start of the current run of data blocks
    for (let off = 0; off < bytes.length; off += BLOCK) {
      const data = !isZero(bytes, off, Math.min(off + BLOCK, bytes.length));
      if (data && start < 0) start = off;
      if (!data && start >= 0) {
        await fh.write(bytes, start, off - start, start);
        start = -1;
      }
    }
    if (start >= 0) await fh.write(bytes, start, bytes.length - start, start);
    await fh.truncate(bytes.length);
  }
  await fh.chmod(mode); // umask must not widen or narrow what we asked for
}

function isZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** Stage one device's directory (see the top of this file); `stamp` is its inputs hash when known. */
export async function stageDevice(devicesDir: string, id: string, files: FileToWrite[], stamp: string | undefined, staged = stagingDir(devicesDir, id)): Promise<StagedDevice> {
  const live = path.join(devicesDir, id);
  // one plain mkdir first: a recursive one reports a read-only filesystem as ENOENT
  await fs.mkdir(devicesDir, { recursive: true });
  await fs.mkdir(staged);
  const made = new Set<string>([staged]);
  let linked = 0;
  let written = 0;
  for (const f of files) {
    const target = path.join(staged, f.path);
    const dir = path.dirname(target);
    if (!made.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      made.add(dir);
    }
    if (await sameFile(path.join(live, f.path), f)) {
      try {
        await fs.link(path.join(live, f.path), target);
        linked++;
        continue;
      } catch {
        /* no hard links here: write it */
      }
    }
    await writeNewFile(target, f.bytes, f.mode);
    written++;
  }
  if (stamp) await writeNewFile(path.join(staged, INPUTS_STAMP), Buffer.from(stamp + '\n'), 0o644);
  return { id, staged, live, linked, written };
}

/** The inputs hash a live device directory was rendered from, if it says. */
export async function readStamp(devicesDir: string, id: string): Promise<string | undefined> {
  const s = await fs.readFile(path.join(devicesDir, id, INPUTS_STAMP), 'utf8').catch(() => undefined);
  return s?.trim() || undefined;
}

/** Step 3: the staged directory becomes devices/<id>; returns the retired one to remove after the commit. */
export async function swapIn(s: StagedDevice): Promise<string | undefined> {
  const retired = path.join(path.dirname(s.live), `${OLD}${randomBytes(4).toString('hex')}-${s.id}`);
  let moved = true;
  try {
    await fs.rename(s.live, retired);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    moved = false;
  }
  await fs.rename(s.staged, s.live);
  return moved ? retired : undefined;
}

/**
 * What a killed build left in devices/: staged directories go; a retired one whose device directory is missing
 * (killed between the two renames of a swap) is put back, any other retired one goes.
 */
export async function sweepDevices(devicesDir: string): Promise<void> {
  const names = await fs.readdir(devicesDir).catch(() => [] as string[]);
  const live = new Set(names.filter((n) => !n.startsWith('.')));
  for (const n of names) {
    if (n.startsWith(NEW)) await fs.rm(path.join(devicesDir, n), { recursive: true, force: true });
    else if (n.startsWith(OLD)) {
      const id = n.slice(OLD.length + 9);
      if (id && !live.has(id)) {
        await fs.rename(path.join(devicesDir, n), path.join(devicesDir, id));
        live.add(id);
      } else await fs.rm(path.join(devicesDir, n), { recursive: true, force: true });
    }
  }
}

/** Remove staged directories of a build that failed before its commit. */
export async function discardStaged(staged: StagedDevice[]): Promise<void> {
  for (const s of staged) await fs.rm(s.staged, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Once per build: everything written so far reaches the disk (syncfs of the output's filesystem through
 * coreutils `sync -f`, else a plain `sync`). A write error the kernel kept for later (EIO, ENOSPC on delayed
 * allocation) surfaces here, before the manifest vouches for anything.
 */
export async function syncOutput(dir: string): Promise<void> {
  const run = promisify(execFile);
  try {
    await run('sync', ['-f', dir]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code !== 'ENOENT' && !/invalid option|unrecognized option/.test(e.stderr ?? '')) {
      throw new Error(`${dir}: syncing the output to disk failed: ${(e.stderr ?? e.message).trim()}`);
    }
    await run('sync', []);
  }
}
