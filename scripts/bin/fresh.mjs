// Is dist/ (scripts/bin/compile.mjs) the compiled form of the sources as they are now? Checked on every start,
// so it must cost next to nothing: no directory walk, one stat per path the stamp names — every compiled source
// (an edit in place changes its mtime) and every folder (adding, removing or renaming a file changes the
// folder's mtime). Anything changed after the compile started, or gone, means stale: run the sources.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export const STAMP = '.stamp';
/** run through tsx by their npm scripts, never by the CLI: not compiled, not watched */
export const SKIP_DIRS = ['bench', 'e2e', 'bin'];

/** @param {string} root the repository @returns {{ fresh: boolean, reason: string, checked: number }} */
export function distIsFresh(root) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(path.join(root, 'dist', STAMP), 'utf8'));
  } catch {
    return { fresh: false, reason: 'no compiled dist/ (npm ci or npm run compile makes it)', checked: 0 };
  }
  let checked = 0;
  for (const rel of [...stamp.dirs, ...stamp.files]) {
    const st = statSync(path.join(root, rel), { throwIfNoEntry: false });
    checked++;
    if (!st) return { fresh: false, reason: `${rel} is gone since dist/ was compiled`, checked };
    if (st.mtimeMs > stamp.startedAt) return { fresh: false, reason: `${rel} changed since dist/ was compiled`, checked };
  }
  return { fresh: true, reason: '', checked };
}
