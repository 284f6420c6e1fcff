// What one device fetches when the GitOps branch moves: source-controller makes a depth-1 clone of the whole
// tree, i.e. one commit's objects as a pack. Measured with real `git` on the tree edgeforge writes (OUT/gitops
// after a build, or an operator's working tree): the tree is committed once in a scratch repository and
// `git pack-objects` of that commit is counted. One thread, so the same tree gives the same bytes.
import { promises as fs } from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import type { TreeFetch } from '../../render/plan/load.ts';

const run = promisify(execFile);
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'edgeforge',
  GIT_AUTHOR_EMAIL: 'plan@edgeforge.invalid',
  GIT_COMMITTER_NAME: 'edgeforge',
  GIT_COMMITTER_EMAIL: 'plan@edgeforge.invalid',
  GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
  GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
};

async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    if (p.split(path.sep).includes('.git')) continue;
    files++;
    bytes += (await fs.stat(p)).size;
  }
  return { files, bytes };
}

/** undefined when `git` is not installed (the plan then says the figure was not measured). */
export async function measureTreeFetch(dir: string, shown = dir): Promise<TreeFetch | undefined> {
  const env = { ...process.env, ...GIT_ENV };
  let version: string;
  try {
    version = (await run('git', ['--version'], { env })).stdout.trim();
  } catch {
    return undefined;
  }
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-treefetch-'));
  try {
    const git = (args: string[]) =>
      run('git', ['-c', 'pack.threads=1', '-c', 'core.autocrlf=false', '-c', 'gc.auto=0', '-c', 'maintenance.auto=false', `--git-dir=${scratch}`, `--work-tree=${dir}`, ...args], {
        env,
        maxBuffer: 1 << 30,
        encoding: 'buffer',
      });
    await git(['init', '-q']);
    await git(['add', '-A', '.']);
    await git(['commit', '-q', '--no-gpg-sign', '-m', 'tree']);
    const objects = (await git(['rev-list', '--objects', 'HEAD'])).stdout;
    const pack = await new Promise<number>((resolve, reject) => {
      const child = spawn('git', ['-c', 'pack.threads=1', `--git-dir=${scratch}`, 'pack-objects', '--stdout', '-q'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
      let n = 0;
      child.stdout.on('data', (c: Buffer) => (n += c.length));
      child.on('error', reject);
      child.on('close', (code: number) => (code === 0 ? resolve(n) : reject(new Error(`git pack-objects exited ${code}`))));
      child.stdin.end(objects);
    });
    const size = await treeSize(dir);
    return { packBytes: pack, files: size.files, treeBytes: size.bytes, git: version, from: shown };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true, maxRetries: 3 });
  }
}
