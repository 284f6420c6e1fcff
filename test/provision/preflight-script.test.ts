// Phase preflight's shell (scripts/provision/phase/preflight.sh): what provision sends is the checked-in file
// without its comment block, with the device layout's paths filled in, then the first-boot state's lines;
// shellcheck reads it as sent, and dash runs it against a sandbox root.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { PREFLIGHT_SCRIPT, parseFacts } from '../../scripts/provision/phase/preflight.ts';
import { APPLIED_FILE, STATE_DIR } from '../../scripts/device/layout.ts';

const HAVE = requireTools(['dash', 'shellcheck'], 'test/provision/preflight-script.test.ts');

describe.runIf(HAVE)('the preflight script', () => {
  it('is preflight.sh as checked in, paths filled from the device layout, and passes shellcheck as sent', () => {
    expect(PREFLIGHT_SCRIPT).not.toMatch(/^#/m);
    expect(PREFLIGHT_SCRIPT).toContain(`D="$R"'${STATE_DIR}'; F="$R"'${APPLIED_FILE}'`);
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-preflight-'));
    try {
      const f = path.join(dir, 'preflight.sh');
      writeFileSync(f, PREFLIGHT_SCRIPT);
      // SC2034: `read` names fields it does not use (the file's own directive, not sent)
      const r = spawnSync(tool('shellcheck'), ['-s', 'sh', '-e', 'SC2034', f], { encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
      // a sandbox root with an applied bundle: the facts name it
      const root = path.join(dir, 'root');
      mkdirSync(path.join(root, STATE_DIR), { recursive: true });
      writeFileSync(path.join(root, APPLIED_FILE), '{"bundleSha256":"abc"}\n');
      const run = spawnSync(tool('dash'), ['-c', PREFLIGHT_SCRIPT], { env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_ARCH: 'aarch64' }, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const kv = parseFacts(run.stdout);
      expect(kv).toMatchObject({ root, arch: 'aarch64', stateDir: 'yes', applied: '{"bundleSha256":"abc"}' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves nothing of the checked-in file out but its comment block', () => {
    const file = readFileSync(new URL('../../scripts/provision/phase/preflight.sh', import.meta.url), 'utf8');
    const body = file.replace(/^(#.*\n)+/, '');
    const firstLine = body.slice(0, body.indexOf('\n'));
    expect(PREFLIGHT_SCRIPT.startsWith(firstLine + '\n')).toBe(true);
    expect(body.split('\n').length).toBeGreaterThan(10);
  });
});
