// Dead exports: scripts/dev/unused-exports.ts (`npm run lint:exports`) over the whole tree must find none but the
// allowed ones, and the check itself must see every way this code imports (so it never calls a used export dead).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALLOWED, findUnusedExports, readCode } from '../../scripts/dev/unused-exports.ts';

const ROOT = path.resolve(__dirname, '../..');
const names = (files: Record<string, string>, o?: { alsoLocal?: boolean }) => findUnusedExports(new Map(Object.entries(files)), o).map((u) => `${u.file} ${u.name}`);

describe('dead exports', () => {
  it('no file exports what nothing uses (the allow-list names why each exception is kept)', () => {
    const code = readCode(ROOT);
    expect(code.size).toBeGreaterThan(300);
    const found = findUnusedExports(code).map((u) => `${u.file}:${u.line}: ${u.name}`);
    const unexplained = found.filter((f) => !ALLOWED.has(f.replace(/:\d+: /, ' ')));
    expect(unexplained).toEqual([]);
    // an allowed export that is gone or used again leaves the list
    const still = new Set(found.map((f) => f.replace(/:\d+: /, ' ')));
    expect([...ALLOWED.keys()].filter((k) => !still.has(k))).toEqual([]);
  });

  it('sees named, default, type-only, namespace, re-exported, dynamic and import() type uses', () => {
    const files = {
      'scripts/a/lib.ts': [
        'export const named = 1;',
        'export default function main() {}',
        'export type T = string;',
        'export const viaNs = 2;',
        'export const viaDyn = 3;',
        'export const viaProp = 4;',
        'export const viaAssign = 5;',
        'export const viaTypeof = 6;',
        'export const dead = 7;',
        'export const onlyLocal = 8;',
        'const x = onlyLocal;',
      ].join('\n'),
      'scripts/a/ns.ts': 'export const n1 = 1;\nexport const n2 = 2;',
      'scripts/a/barrel.ts': "export { named as renamed, dead as deadAgain } from './lib.ts';\nexport * from './star.ts';",
      'scripts/a/star.ts': 'export const throughStar = 1;\nexport const notThrough = 2;',
      'scripts/b/user.ts': [
        "import main, { type T } from '../a/lib.ts';",
        "import * as ns from '../a/ns.ts';",
        "import { renamed, throughStar } from '../a/barrel.ts';",
        'const y = ns.n1;',
        "const { viaDyn } = await import('../a/lib.ts');",
        "const z = (await import('../a/lib.ts')).viaProp;",
        "let viaAssign; ({ viaAssign } = await import('../a/lib.ts'));",
        "type U = typeof import('../a/lib.ts').viaTypeof;",
      ].join('\n'),
    };
    expect(names(files)).toEqual(['scripts/a/barrel.ts deadAgain', 'scripts/a/lib.ts viaNs', 'scripts/a/lib.ts dead', 'scripts/a/ns.ts n2', 'scripts/a/star.ts notThrough']);
    // with alsoLocal, a name only its own file uses is listed too
    expect(names(files, { alsoLocal: true })).toEqual([
      'scripts/a/barrel.ts deadAgain',
      'scripts/a/lib.ts viaNs',
      'scripts/a/lib.ts dead',
      'scripts/a/lib.ts onlyLocal',
      'scripts/a/ns.ts n2',
      'scripts/a/star.ts notThrough',
    ]);
  });

  it('a namespace passed on, a dynamic import kept whole, dist/ paths and .d.mts twins count as uses', () => {
    const files = {
      'scripts/a/whole.ts': 'export const w = 1;',
      'scripts/a/kept.ts': 'export const k = 1;',
      'scripts/cli/main.ts': 'export async function main() {}',
      'scripts/a/x.mjs': 'export function f() {}',
      'scripts/a/x.d.mts': 'export function f(): void;',
      'scripts/bin/run.mjs':
        "import * as whole from '../a/whole.ts';\nuse(whole);\nconst m = await import('../a/kept.ts');\n({ main } = await import('../../dist/cli/main.js'));\nimport { f } from '../a/x.mjs';",
      'test/x.test.ts': 'export const testsAreNotChecked = 1;',
    };
    expect(names(files)).toEqual([]);
  });
});
