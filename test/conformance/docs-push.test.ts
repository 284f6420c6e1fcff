// docs/gitops.md's push steps, run as written with git: the pre-push line and the CI example must put what
// `gitops --to` created (a revoked-*.yaml, a join token, a new site) into the commit they push — `commit -am`
// leaves new files out, and a push without a commit sends nothing. `edgeforge` here stands in for the writer:
// it adds one new file and changes one, as a revoke does.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
const HAVE_TOOLS = requireTools(['git', 'dash'], 'test/conformance/docs-push.test.ts');

const doc = readFileSync('docs/gitops.md', 'utf8');
const section = doc.slice(doc.indexOf('### Before you push'), doc.indexOf('### SOPS'));
const block = (lang: string) => [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].find((m) => m[1] === lang)![2];

const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e', GIT_CONFIG_GLOBAL: '/dev/null' };
// the writer: `gitops --to DIR` changes a managed file and creates a new one; anything else (validate, --check) writes nothing
const STUB = `edgeforge() { case " $* " in *" --check "*) return 0;; esac; [ "$1 $2" = "gitops --to" ] || return 0; echo changed > "$3/site.yaml"; echo revoked > "$3/revoked-agent.yaml"; }
npx() { "$@"; }
set -e
`;

function pushedFiles(commands: string, cwd: string, remote: string): string[] {
  execFileSync(tool('dash'), ['-c', STUB + commands], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return execFileSync(tool('git'), ['-C', remote, 'ls-tree', '-r', '--name-only', 'main'], { encoding: 'utf8', env }).split('\n').filter(Boolean);
}

/** A remote with one commit, cloned to `clone`. */
function repos(root: string, clone: string): string {
  const remote = path.join(root, 'remote.git');
  const git = (...a: string[]) => execFileSync(tool('git'), a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '-q', '--bare', '-b', 'main', remote);
  git('clone', '-q', remote, clone);
  writeFileSync(path.join(clone, 'site.yaml'), 'before\n');
  git('-C', clone, 'add', '-A');
  git('-C', clone, 'commit', '-qm', 'first');
  git('-C', clone, 'push', '-q', 'origin', 'HEAD:main');
  return remote;
}

describe.runIf(HAVE_TOOLS)('docs/gitops.md push steps', () => {
  it('the pre-push line commits the files the run created, and pushes them', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'ef-docs-push-'));
    try {
      mkdirSync(path.join(root, 'inventory'));
      const remote = repos(root, path.join(root, 'fleet-repo'));
      const line = block('sh')
        .split('\n')
        .find((l) => /\bpush\b/.test(l))!;
      expect(pushedFiles(line.replace('"fleet: …"', '"fleet: test"'), path.join(root, 'inventory'), remote)).toEqual(['revoked-agent.yaml', 'site.yaml']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the CI example commits and pushes what gitops --to wrote, and does nothing when nothing changed', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'ef-docs-push-'));
    try {
      const remote = repos(root, path.join(root, 'fleet-repo'));
      const steps = block('yaml')
        .split('\n')
        .map((l) => /^- run: (.*)$/.exec(l)?.[1])
        .filter((c): c is string => Boolean(c));
      expect(steps.length).toBeGreaterThan(2);
      expect(pushedFiles(steps.join('\n'), root, remote)).toEqual(['revoked-agent.yaml', 'site.yaml']);
      // a second run that changes nothing still exits 0
      expect(() => pushedFiles(steps.join('\n'), root, remote)).not.toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
