// Comments and docs say why, not which issue: an issue number tells a reader nothing without the tracker, and
// the reason it stood for belongs in the sentence. CHANGELOG.md is the one place that names issues.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectFiles, ROOT } from './project-files.ts';

const WHERE = ['scripts', 'test', 'docs', '.ci', 'README.md', 'BENCHMARKS.md'];
const ISSUE = new RegExp(['\\bissues? #?\\d+\\b', '\\(#\\d+\\)'].join('|'), 'i');

function issueReferences(file: string, text: string): string[] {
  return text.split('\n').flatMap((l, i) => (ISSUE.test(l) ? [`${file}:${i + 1}: ${l.trim()}`] : []));
}

describe('comments say why, not which issue', () => {
  it('no issue number in scripts/, test/, docs/, .ci/, README.md or BENCHMARKS.md', () => {
    const files = projectFiles(...WHERE).filter((f) => /\.(ts|mts|mjs|sh|md|txt|yaml|yml)$/.test(f) || f === '.ci/run');
    expect(files.length).toBeGreaterThan(300);
    expect(files.flatMap((f) => issueReferences(f, readFileSync(path.join(ROOT, f), 'utf8')))).toEqual([]);
  });

  it('the check sees the usual spellings', () => {
    // spelled apart so this file does not hold what it looks for
    const [issue, hash] = ['iss' + 'ue', '(' + '#'];
    const text = [`// as in ${issue} #18`, `// (${issue} 17)`, `// the reporter ${hash}24)`, `// ${issue}s 3`, '// a PKCS#8 key', '// step 18 of 20', '// sha256 #abc'].join('\n');
    expect(issueReferences('f.ts', text).map((l) => l.split(':')[1])).toEqual(['1', '2', '3', '4']);
  });
});
