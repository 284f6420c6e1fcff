// The project's own files under the given paths (relative, POSIX), for the checks that read every file: node_modules
// and upstream data kept byte for byte (fixtures) are not ours.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
const SKIP = new Set(['node_modules', 'fixtures']);

export function projectFiles(...where: string[]): string[] {
  const walk = (p: string): string[] => {
    const abs = path.join(ROOT, p);
    if (!existsSync(abs)) return [];
    if (!statSync(abs).isDirectory()) return [p];
    return readdirSync(abs)
      .filter((n) => !SKIP.has(n))
      .flatMap((n) => walk(path.posix.join(p, n)));
  };
  return where.flatMap(walk);
}
