// Writing the scaffold into a working tree: the thin I/O shell around planScaffoldUpdate (pure).
import { promises as fs, readFileSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { writeFileAtomic } from '../../util/atomic.ts';
import { isManaged } from '../../render/gitops/marker.ts';
import { planScaffoldUpdate, type UpdatePlan } from '../../render/gitops/update.ts';
import type { ScaffoldFile } from '../../render/gitops/scaffold.ts';

/** Refuse paths that would leave the tree (the scaffold is generated, but a tree is written by root sometimes). */
function target(dir: string, rel: string): string {
  if (rel.startsWith('/') || rel.split('/').some((s) => s === '..' || s === '')) throw new Error(`refusing scaffold path "${rel}"`);
  return path.join(dir, ...rel.split('/'));
}

// sync reads: thousands of small files, and an awaited read is a round trip through libuv's 4-thread pool
async function readIfExists(file: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Every file under dir carrying the edgeforge marker (skips .git and other dot-directories except .sops). */
export async function findManagedFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const limit = pLimit(16); // thousands of small files in a 2,000-device scaffold: reads overlap
  const reads: Promise<void>[] = [];
  const walk = async (rel: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    const subdirs: Promise<void>[] = [];
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (e.name.startsWith('.') && e.name !== '.sops') continue;
        subdirs.push(walk(r));
      } else if (e.isFile() && /\.(ya?ml|asc)$/.test(e.name)) {
        reads.push(
          limit(async () => {
            const fd = openSync(path.join(dir, r), 'r');
            try {
              const buf = Buffer.alloc(1024);
              const bytesRead = readSync(fd, buf, 0, 1024, 0);
              if (isManaged(buf.subarray(0, bytesRead))) out.push(r);
            } finally {
              closeSync(fd);
            }
          }),
        );
      }
    }
    await Promise.all(subdirs);
  };
  await walk('');
  await Promise.all(reads);
  return out.sort();
}

export interface WriteTreeResult extends UpdatePlan {
  dir: string;
  dryRun: boolean;
}

/** Create or update `dir` from the scaffold without clobbering operator files. */
export async function writeGitopsTree(dir: string, files: ScaffoldFile[], opts: { prune?: boolean; dryRun?: boolean; fsync?: boolean } = {}): Promise<WriteTreeResult> {
  const existing = new Map<string, Uint8Array>();
  const limit = pLimit(16);
  await Promise.all(
    files.map((f) =>
      limit(async () => {
        const cur = await readIfExists(target(dir, f.path));
        if (cur) existing.set(f.path, cur);
      }),
    ),
  );
  const plan = planScaffoldUpdate(files, existing, await findManagedFiles(dir), { prune: opts.prune });
  if (!opts.dryRun) {
    await Promise.all(
      plan.entries.map((e) =>
        limit(async () => {
          if (e.action === 'create' || e.action === 'update') await writeFileAtomic(target(dir, e.path), e.bytes!, { mode: 0o644, fsync: opts.fsync });
          else if (e.action === 'delete') await fs.rm(target(dir, e.path), { force: true });
        }),
      ),
    );
    // remove directories a prune left empty (never a directory that still holds anything)
    for (const e of plan.entries.filter((x) => x.action === 'delete')) {
      let d = path.dirname(target(dir, e.path));
      while (d.startsWith(path.resolve(dir) + path.sep) || d.startsWith(dir + path.sep)) {
        try {
          await fs.rmdir(d);
        } catch {
          break;
        }
        d = path.dirname(d);
      }
    }
  }
  return { dir, dryRun: Boolean(opts.dryRun), ...plan };
}
