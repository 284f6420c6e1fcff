// Guard: the repository needs nothing outside itself. A fresh clone with the README's two commands must pass, so
// no code, test, CI file or package script may name a path beside or above the checkout (the team's ../shared
// folder, /work/...). A static check of every text file under scripts/, test/, .ci/ and package.json.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../../scripts/testkit/fixed-secrets.ts';

/** paths that leave the checkout: the team's shared folder, the machine's work tree */
const OUTSIDE = [/\.\.\/shared\b/, /(?<![\w.$}-])\/work\//];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return files(p);
    return /\.(ts|mts|mjs|js|sh|txt|json|yaml)$/.test(e.name) || !e.name.includes('.') ? [p] : [];
  });
}

export function outsideReferences(src: string): string[] {
  return src.split('\n').flatMap((line, i) => (OUTSIDE.some((re) => re.test(line)) ? [`${i + 1}: ${line.trim()}`] : []));
}

describe('the repository stands alone', () => {
  it('the check sees a reference outside the repository', () => {
    // the samples are assembled so that this file itself holds no such reference
    const [up, work] = ['..', '/work'].map((p) => `${p}/shared/k3s-flags`);
    expect(outsideReferences(`const dir = path.join(repo, '${up}');`)).toHaveLength(1);
    expect(outsideReferences(`candidates.push('${work}');`)).toHaveLength(1);
    expect(outsideReferences("kustomization({ resources: ['../../../infrastructure/base'] })")).toEqual([]);
  });

  it('no file under scripts/, test/, .ci/ (or package.json) names a path outside the checkout', () => {
    const all = [...files(path.join(REPO, 'scripts')), ...files(path.join(REPO, 'test')), ...files(path.join(REPO, '.ci')), path.join(REPO, 'package.json')];
    expect(all.length).toBeGreaterThan(100);
    const self = path.join(REPO, 'test/guard/self-contained.test.ts');
    const found = all.filter((f) => f !== self).flatMap((f) => outsideReferences(readFileSync(f, 'utf8')).map((l) => `${path.relative(REPO, f)}:${l}`));
    expect(found).toEqual([]);
  });
});
