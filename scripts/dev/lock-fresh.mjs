// Exit 0 when node_modules holds exactly what package-lock.json pins (npm records what it installed in
// node_modules/.package-lock.json), 1 otherwise: scripts/dev/test.sh then runs `npm ci`. Content, not mtimes:
// a git checkout touches files without changing them.
import { readFileSync } from 'node:fs';

const read = (f) => {
  try {
    return JSON.parse(readFileSync(f, 'utf8')).packages ?? {};
  } catch {
    return undefined;
  }
};
const want = read('package-lock.json');
const have = read('node_modules/.package-lock.json');
let fresh = Boolean(want && have);
if (fresh) {
  for (const [k, v] of Object.entries(want)) {
    if (!k) continue; // the project itself
    const h = have[k];
    // optional packages for other platforms (esbuild's, rollup's) are pinned but not installed
    if (h ? h.version !== v.version : !v.optional) fresh = false;
  }
  for (const k of Object.keys(have)) if (!(k in want)) fresh = false;
}
process.exit(fresh ? 0 : 1);
