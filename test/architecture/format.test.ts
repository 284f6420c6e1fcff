// One formatter for all: every TypeScript and JavaScript file of the project is as prettier (pinned in
// package.json, options in .prettierrc.json) prints it. `npm run format` rewrites them; this fails with the files
// that differ, so a review never argues about layout.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const WHERE = ['scripts', 'test', 'vitest.config.ts'];
const SKIP = new Set(['node_modules', 'fixtures']);

function walk(p: string): string[] {
  const abs = path.join(ROOT, p);
  if (!existsSync(abs)) return [];
  if (!statSync(abs).isDirectory()) return [p];
  return readdirSync(abs)
    .filter((n) => !SKIP.has(n))
    .flatMap((n) => walk(path.posix.join(p, n)));
}

describe('one formatter', () => {
  it('every .ts/.mts/.mjs file is formatted as prettier prints it (npm run format)', async () => {
    const files = WHERE.flatMap(walk).filter((f) => /\.(ts|mts|mjs)$/.test(f));
    expect(files.length).toBeGreaterThan(300);
    const options = await prettier.resolveConfig(path.join(ROOT, 'scripts/x.ts'));
    expect(options, '.prettierrc.json').toMatchObject({ singleQuote: true });
    const unformatted: string[] = [];
    for (const f of files) {
      if (!(await prettier.check(readFileSync(path.join(ROOT, f), 'utf8'), { ...options, filepath: f }))) unformatted.push(f);
    }
    expect(unformatted, 'run: npm run format').toEqual([]);
  }, 120_000);
});
