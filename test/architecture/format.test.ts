// One formatter for all: every TypeScript and JavaScript file of the project is as prettier (pinned in
// package.json, options in .prettierrc.json) prints it. `npm run format` rewrites them; this fails with the files
// that differ, so a review never argues about layout.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';
import { projectFiles, ROOT } from './project-files.ts';

const WHERE = ['scripts', 'test', 'vitest.config.ts'];

describe('one formatter', () => {
  it('every .ts/.mts/.mjs file is formatted as prettier prints it (npm run format)', async () => {
    const files = projectFiles(...WHERE).filter((f) => /\.(ts|mts|mjs)$/.test(f));
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
