// The "unit" project of vitest.config.ts (`npm run test:unit`) is the fast loop: each of its files must run no
// external program, so that a missing tool or a slow one never enters it. A file that starts one belongs to
// "integration", which `npm test` runs as well.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UNIT_TESTS } from '../../vitest.config.ts';

const ROOT = path.resolve(__dirname, '../..');
// a child process, zx, or the helpers that find and start external tools and services
const EXTERNAL = /node:child_process|from 'zx'|requireTools|\btool\(|testkit\/(sshd|registry)\.ts|status\/local-broker\.ts/;

/** the glob forms vitest.config.ts uses: a file, or `dir/**\/*.test.ts` */
const matcher = (glob: string) =>
  new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*\*\//g, '(?:.*/)?')
      .replace(/\*/g, '[^/]*')}$`,
  );

function testFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'e2e' || e.name === 'fixtures' ? [] : testFiles(`${dir}/${e.name}`)) : e.name.endsWith('.test.ts') ? [`${dir}/${e.name}`] : [],
  );
}

describe('the unit project', () => {
  const all = testFiles('test');
  const unit = all.filter((f) => UNIT_TESTS.some((g) => matcher(g).test(f)));

  it('every entry names at least one test file', () => {
    expect(UNIT_TESTS.filter((g) => !all.some((f) => matcher(g).test(f)))).toEqual([]);
    expect(unit.length).toBeGreaterThan(20);
    expect(unit.length).toBeLessThan(all.length);
  });

  it('no unit test file starts an external program', () => {
    const self = path.relative(ROOT, __filename).split(path.sep).join('/'); // it names them to look for them
    expect(unit.filter((f) => f !== self && EXTERNAL.test(readFileSync(path.join(ROOT, f), 'utf8')))).toEqual([]);
  });

  it('the glob forms match as vitest reads them', () => {
    expect(matcher('test/inventory/**/*.test.ts').test('test/inventory/day2.test.ts')).toBe(true);
    expect(matcher('test/inventory/**/*.test.ts').test('test/inventory/deep/x.test.ts')).toBe(true);
    expect(matcher('test/inventory/**/*.test.ts').test('test/inventoryx/a.test.ts')).toBe(false);
    expect(matcher('test/plan/plan.test.ts').test('test/plan/planXtest.ts')).toBe(false);
  });
});
