// Guard: no test reaches an external program except through scripts/testkit/tools.ts, so none can pass (or be
// skipped without a word) because the program is missing. A static check of every test file and the testkit:
// each child_process call (spawn, spawnSync, execFile, execFileSync, exec, execSync, and names bound to
// promisify(execFile)) and each zx `$` must name its program as `tool('name')`, `process.execPath`, or one of
// ALWAYS_THERE; a program given by path ('/usr/sbin/sshd') or by a variable is refused.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO } from '../../scripts/testkit/fixed-secrets.ts';
import { missingTools, requireTools, TOOLS, toolsRequired } from '../../scripts/testkit/tools.ts';

/**
 * Programs every Debian/Ubuntu system has: they come from Essential packages (dash, bash, coreutils, tar), which
 * cannot be removed, plus node itself (the suite runs on it). Nothing else.
 */
const ALWAYS_THERE = new Set(['node', 'sh', 'dash', 'bash', 'cp', 'rm', 'dd', 'truncate', 'sha256sum', 'test', 'tar', 'cat', 'env', 'mkdir']);
const SPAWNERS = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync'];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : /\.(ts|mts|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** every place `src` starts a program without the helper, as "LINE: code" */
export function unguardedCalls(src: string): string[] {
  const names = [...SPAWNERS];
  // const run = promisify(execFile) and the like
  for (const m of src.matchAll(/\bconst\s+(\w+)\s*=\s*promisify\(\s*(\w+)\s*\)/g)) if (SPAWNERS.includes(m[2])) names.push(m[1]);
  const bad: string[] = [];
  // comments out (keeping line numbers), so a call may span lines
  const code = src.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/^[ \t]*\/\/.*$/gm, '');
  const at = (i: number) => `${code.slice(0, i).split('\n').length}: ${src.split('\n')[code.slice(0, i).split('\n').length - 1].trim()}`;
  for (const m of code.matchAll(new RegExp(`(?<![\\w.])(${names.join('|')})\\(\\s*([^,)]*)`, 'g'))) {
    const arg = m[2].trim();
    const lit = /^['"`]([^'"`$]*)['"`]$/.exec(arg);
    const ok = arg.startsWith('tool(') || arg === 'process.execPath' || (lit !== null && ALWAYS_THERE.has(lit[1]));
    if (!ok) bad.push(at(m.index!));
  }
  // zx: $`cmd …` — the first word must be a ${tool(...)} or always there
  for (const m of code.matchAll(/(?<=^|[\s(=,;!])\$(?:\([^)]*\))?`\s*(\$\{[^}]*\}|[^\s`]+)/gm)) {
    const first = m[1];
    if (!(first.startsWith('${tool(') || ALWAYS_THERE.has(first))) bad.push(at(m.index!));
  }
  return bad;
}

describe('every external program in the tests goes through scripts/testkit/tools.ts', () => {
  it('finds no test file that starts a program by bare name, by path or by variable', () => {
    // test/e2e drives a whole VM as root with its own checks (docs/e2e.md); this file holds the bad examples
    const all = [...files(path.join(REPO, 'test')), ...files(path.join(REPO, 'scripts/testkit'))].filter((f) => !f.includes(`${path.sep}e2e${path.sep}`) && f !== fileURLToPath(import.meta.url));
    expect(all.length).toBeGreaterThan(40);
    const found = all.flatMap((f) => unguardedCalls(readFileSync(f, 'utf8')).map((l) => `${path.relative(REPO, f)}:${l}`));
    expect(found).toEqual([]);
  });

  it('catches the shapes it is meant to catch (and lets the helper through)', () => {
    const src = [
      "import { execFile } from 'node:child_process';",
      'const run = promisify(execFile);',
      "spawnSync('sfdisk', ['--verify', img]);",
      "spawn('/usr/sbin/sshd', ['-D']);",
      'execFileSync(cmd, args);',
      "await run('shellcheck', files);",
      'await $`kubectl kustomize ${dir}`;',
      "spawnSync(tool('sfdisk'), ['--verify', img]);",
      "spawnSync('dash', [p]);",
      'spawn(process.execPath, [child]);',
      "spawn(\n  'swtpm',\n  ['socket']);",
      'expect(x).toMatch(new RegExp(`^${id}-[0-9a-f]{16}$`));',
      "await run(tool('cloud-init'), ['schema']);",
      "await $`${tool('kubectl')} kustomize ${dir}`;",
    ].join('\n');
    expect(
      unguardedCalls(src)
        .map((l) => Number(l.split(':')[0]))
        .sort((a, b) => a - b),
    ).toEqual([3, 4, 5, 6, 7, 11]);
  });
});

describe('the tool helper', () => {
  const noTools = { PATH: '/nonexistent' };
  it('names the missing tool and its Debian package, and the apt-get line', () => {
    expect(missingTools(['bmaptool', 'shellcheck'], noTools)).toBe('bmaptool (Debian package bmap-tools), shellcheck (Debian package shellcheck) not found — apt-get install bmap-tools shellcheck');
  });

  it('fails under CI or EDGEFORGE_REQUIRE_TOOLS=1, skips (false) otherwise', () => {
    expect(() => requireTools(['bmaptool'], 'disk tests', { ...noTools, CI: 'true' })).toThrow(/disk tests: bmaptool \(Debian package bmap-tools\) not found/);
    expect(() => requireTools(['bmaptool'], 'disk tests', { ...noTools, EDGEFORGE_REQUIRE_TOOLS: '1' })).toThrow(/apt-get install bmap-tools/);
    expect(requireTools(['bmaptool'], 'self-test of the helper (not a real skip)', { ...noTools, CI: 'false' })).toBe(false);
    expect(toolsRequired({ CI: '1' })).toBe(true);
    expect(toolsRequired({})).toBe(false);
  });

  it('knows a package for every tool it lists, and every package it names is in .ci/packages.txt', () => {
    const listed = new Set(
      readFileSync(path.join(REPO, '.ci/packages.txt'), 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter(Boolean),
    );
    // Essential packages (always installed) and the ones other listed packages pull in
    const implied = new Set(['coreutils', 'util-linux', 'mount', 'passwd', 'e2fsprogs', 'openssh-sftp-server', 'python3-yaml', 'gnupg']);
    const notListed = Object.entries(TOOLS)
      .map(([name, t]) => [name, t.pkg] as const)
      .filter(([, pkg]) => !pkg.includes(' ') && !listed.has(pkg) && !implied.has(pkg));
    expect(notListed).toEqual([]);
  });
});
