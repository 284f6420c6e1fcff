// The compiled tree (scripts/bin/compile.mjs -> dist/) that `npm ci` makes and scripts/bin/edgeforge.mjs runs:
// compiled in a copy of the repository, so this worktree's own dist/ is left alone. It must list the same
// commands with the same help, load no command for --help, find the .sh and .mjs files its modules read by path,
// build the same bytes as the sources, and never run once a source changed after it was compiled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { commands } from '../../scripts/cli/commands/index.ts';

const repo = process.cwd();
let root: string;

/** node with args in the copy, asynchronously (a long spawnSync would stall vitest's worker) */
function node(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, flags: string[] = []) {
  return node([...flags, 'scripts/bin/edgeforge.mjs', ...args], { CI: '', EDGEFORGE_RUN_SOURCES: '', EDGEFORGE_DEBUG: '1', ...env });
}

/** the files under `dir`, relative, with the given endings */
function listFiles(dir: string, re: RegExp, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(dir, re, path.join(rel, e.name)) : re.test(e.name) ? [path.join(rel, e.name)] : []));
}

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'ef-compiled-'));
  for (const p of ['scripts', 'inventory', 'images/profiles', 'package.json']) cpSync(path.join(repo, p), path.join(root, p), { recursive: true });
  symlinkSync(path.join(repo, 'node_modules'), path.join(root, 'node_modules'));
  const c = await node(['scripts/bin/compile.mjs']);
  expect(c.code, c.stderr).toBe(0);
  // a module hook that logs every file the CLI loads (node --import register.mjs)
  writeFileSync(
    path.join(root, 'hooks.mjs'),
    "import { appendFileSync } from 'node:fs';\nexport async function load(url, ctx, next) { appendFileSync(process.env.LOAD_LOG, url + '\\n'); return next(url, ctx); }\n",
  );
  writeFileSync(path.join(root, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
}, 300_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** the files a run loaded, relative to the copy */
async function loaded(args: string[]) {
  const log = path.join(root, `load-${Math.random().toString(36).slice(2)}.log`);
  const r = await run(args, { LOAD_LOG: log }, ['--import', './register.mjs']);
  const files = readFileSync(log, 'utf8')
    .split('\n')
    .filter((u) => u.startsWith('file://'))
    .map((u) => path.relative(root, new URL(u).pathname));
  return { files, r };
}

describe('compiled tree (dist/)', () => {
  it('holds every command with the spec the sources give it, and where its run is', () => {
    const index = JSON.parse(readFileSync(path.join(root, 'dist/cli/commands.json'), 'utf8'));
    expect(index.map((e: { name: string }) => e.name)).toEqual(commands.map((c) => c.name));
    for (const [i, c] of commands.entries()) {
      const { module, export: name, ...spec } = index[i];
      const { run: fn, ...expected } = c;
      expect(spec, c.name).toEqual(JSON.parse(JSON.stringify(expected)));
      expect(typeof fn, c.name).toBe('function');
      expect(existsSync(path.join(root, 'dist/cli/commands', module)) && typeof name, c.name).toBe('string');
    }
  });

  it('copies every .mjs and .sh file the modules read by path', () => {
    const src = path.join(root, 'scripts');
    const wanted = listFiles(src, /\.(mjs|sh)$/).filter((f) => !/^(bin|bench|e2e)\//.test(f));
    expect(wanted).toEqual(expect.arrayContaining(['keys/worker.mjs', 'render/firstboot/main.sh']));
    for (const f of wanted) expect(readFileSync(path.join(root, 'dist', f), 'utf8'), f).toBe(readFileSync(path.join(src, f), 'utf8'));
  });

  it('--help and validate --help run the compiled files and load no command module', async () => {
    for (const args of [['--help'], ['validate', '--help'], ['build', '--help']]) {
      const { files, r } = await loaded(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('running the compiled dist/');
      expect(r.stdout).toContain('Example:');
      expect(files).toContain('dist/cli/main.js');
      expect(
        files.filter((f) => f.startsWith('dist/cli/commands/') || (f.startsWith('scripts/') && f.endsWith('.ts'))),
        args.join(' '),
      ).toEqual([]);
      expect(
        files.filter((f) => /node_modules\/(zod|openpgp|ssh2|zx|listr2|tsx)\//.test(f)),
        args.join(' '),
      ).toEqual([]);
    }
  });

  it('validate loads its own command, not the others', async () => {
    const { files, r } = await loaded(['validate']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('valid — fleet acme-smart-factory');
    expect(files.filter((f) => f.startsWith('dist/cli/commands/'))).toEqual(['dist/cli/commands/validate.js']);
    expect(files.filter((f) => /node_modules\/(openpgp|ssh2|listr2)\//.test(f))).toEqual([]);
  });

  it('builds the same bytes as the sources (first-boot .sh, key worker thread)', async () => {
    const keys = path.join(root, 'keys-test');
    const env = { SOURCE_DATE_EPOCH: '1767225600', EDGEFORGE_KEY_WORKERS: '2' };
    const only = ['--only', 'ulsan1-line1-001,changwon2-server', '--keys', keys];
    const a = await run(['build', ...only, '-o', 'out-compiled'], env);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toContain('running the compiled dist/');
    const b = await run(['build', ...only, '-o', 'out-sources'], { ...env, EDGEFORGE_RUN_SOURCES: '1' });
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toContain('running the sources through tsx');
    const files = listFiles(path.join(root, 'out-compiled'), /./);
    expect(files).toEqual(expect.arrayContaining(['devices/ulsan1-line1-001/bundle/firstboot.sh', 'manifest.json']));
    expect(listFiles(path.join(root, 'out-sources'), /./)).toEqual(files);
    for (const f of files.filter((x) => !x.endsWith('.asc'))) {
      expect(readFileSync(path.join(root, 'out-compiled', f)).equals(readFileSync(path.join(root, 'out-sources', f))), f).toBe(true);
    }
  }, 240_000);

  it("npm's prepare (--if-stale) leaves a fresh dist/ alone (npx runs it too, before its first answer)", async () => {
    const stamp = readFileSync(path.join(root, 'dist/.stamp'), 'utf8');
    const c = await node(['scripts/bin/compile.mjs', '--if-stale']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toContain('dist/ is up to date');
    expect(readFileSync(path.join(root, 'dist/.stamp'), 'utf8')).toBe(stamp);
    expect(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.prepare).toBe('node scripts/bin/compile.mjs --if-stale');
  });

  it('runs the sources once a source is edited, added or removed after the compile', async () => {
    const file = path.join(root, 'scripts/ui/reporter.ts');
    const stale = async (why: RegExp) => {
      const r = await run(['--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Commands:');
      expect(r.stderr).toMatch(why);
    };
    // edited in place: only the file's mtime moves
    writeFileSync(file, readFileSync(file));
    await stale(/running the sources through tsx \(scripts\/ui\/reporter\.ts changed since dist\/ was compiled/);
    const c = await node(['scripts/bin/compile.mjs']);
    expect(c.code, c.stderr).toBe(0);
    expect((await run(['--help'])).stderr).toContain('running the compiled dist/');
    // a new file changes its folder's mtime
    const dir = path.join(root, 'scripts/render/firstboot');
    writeFileSync(path.join(dir, 'new.sh'), 'echo new\n');
    await stale(/scripts\/render\/firstboot changed since dist\/ was compiled/);
    unlinkSync(path.join(dir, 'new.sh'));
    // a removed file is gone (its folder put back in the past, so the file itself is what is noticed)
    rmSync(path.join(dir, 'main.sh'));
    utimesSync(dir, new Date(0), new Date(0));
    await stale(/scripts\/render\/firstboot\/main\.sh is gone since dist\/ was compiled/);
  }, 300_000);
});
