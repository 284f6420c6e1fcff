// Atomic file writes: write a temp file beside the target, fsync, rename over it.
// A killed run therefore leaves either the old file or the new one, never half of either.
import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface WriteOptions {
  /** file mode, e.g. 0o600 for secrets (applied before the rename, so the file is never visible wider) */
  mode?: number;
  /** skip the write when the file already holds exactly these bytes (keeps mtimes stable for rebuilds) */
  skipIfSame?: boolean;
  /** false: no fsync of the temp file; the caller syncs the filesystem once before relying on it (the build) */
  fsync?: boolean;
  /** owner and group of the new file (set before the rename; changing them to another user's needs root) */
  owner?: { uid: number; gid: number };
}

export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.edgeforge-tmp-${path.basename(target)}-${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(target: string, data: Uint8Array | string, opts: WriteOptions = {}): Promise<boolean> {
  const p = await prepareFileAtomic(target, data, opts);
  await p.commit();
  return p.changed;
}

export interface PreparedFile {
  /** false when skipIfSame found the bytes already there (commit does nothing) */
  changed: boolean;
  /** rename the synced temp file over the target */
  commit(): Promise<void>;
  /** remove the temp file instead */
  discard(): Promise<void>;
}

/**
 * The first half of writeFileAtomic: the temp file is written and fsynced, the rename waits for commit(). The
 * build prepares its manifest this way before it swaps device directories in, so a full disk is found while
 * the previous manifest still stands.
 */
export async function prepareFileAtomic(target: string, data: Uint8Array | string, opts: WriteOptions = {}): Promise<PreparedFile> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const mode = opts.mode ?? 0o644;
  if (opts.skipIfSame) {
    try {
      const [st, old] = await Promise.all([fs.stat(target), fs.readFile(target)]);
      if ((st.mode & 0o777) === mode && Buffer.compare(old, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) === 0) {
        return { changed: false, commit: async () => {}, discard: async () => {} };
      }
    } catch {
      /* missing: write it */
    }
  }
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    await fh.writeFile(bytes);
    if (opts.owner) {
      const st = await fh.stat();
      if (st.uid !== opts.owner.uid || st.gid !== opts.owner.gid) await fh.chown(opts.owner.uid, opts.owner.gid);
    }
    await fh.chmod(mode); // umask must not widen or narrow what we asked for (after chown, which may clear bits)
    if (opts.fsync !== false) await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  const discard = () => fs.rm(tmp, { force: true });
  return {
    changed: true,
    async commit() {
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        await discard();
        throw err;
      }
    },
    discard,
  };
}

/** Remove temp files a killed run may have left behind in a directory tree. */
export async function sweepTempFiles(dir: string, skip: (name: string) => boolean = () => false): Promise<number> {
  let removed = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (skip(e.name)) continue;
    if (e.isDirectory()) removed += await sweepTempFiles(p);
    else if (e.name.startsWith('.edgeforge-tmp-')) {
      await fs.rm(p, { force: true });
      removed++;
    }
  }
  return removed;
}
