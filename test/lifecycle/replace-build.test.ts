// After revoke and replace, OUT holds the whole build again: the signed manifest lists every active device (the
// revoked one and its secrets gone, the replacement in), and `verify OUT` passes.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initKeys } from '../../scripts/keys/init.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { runCli } from '../helpers.ts';

describe('revoke and replace keep the rest of the build', () => {
  it('the manifest lists every active device, signed, and verify passes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-replace-build-'));
    copyFileSync('inventory/example.yaml', path.join(dir, 'fleet.yaml'));
    await initKeys({ dir: path.join(dir, 'keys'), exampleAdmin: true, fleet: 'acme-smart-factory' });
    const cli = (...a: string[]) => runCli([...a, '-i', 'fleet.yaml', '--keys', 'keys', '-o', 'out'], { cwd: dir, env: { SOURCE_DATE_EPOCH: '1767225600', EDGEFORGE_NOW: '1767225600' } });
    const listed = () => (JSON.parse(readFileSync(path.join(dir, 'out/manifest.json'), 'utf8')).devices as { id: string }[]).map((d) => d.id);
    const active = () => loadInventoryBytes(readFileSync(path.join(dir, 'fleet.yaml')), 'fleet.yaml').active.map((d) => d.id);
    const verify = async () => {
      const v = await runCli(['verify', 'out', '--keys', 'keys'], { cwd: dir });
      expect(v.code, v.stdout + v.stderr).toBe(0);
    };

    const b = await cli('build');
    expect(b.code, b.stderr).toBe(0);
    const seedBefore = readFileSync(path.join(dir, 'out/devices/brno1-dock-001/seed/user-data'));
    const otherSiteBefore = readFileSync(path.join(dir, 'out/devices/stuttgart3-asm-001/seed/user-data'));

    const r = await cli('revoke', 'brno1-dock-002', '--reason', 'stolen');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('out: rebuilt without brno1-dock-002');
    expect(listed()).toEqual(active());
    expect(listed()).not.toContain('brno1-dock-002');
    expect(existsSync(path.join(dir, 'out/devices/brno1-dock-002'))).toBe(false);
    await verify();
    // the site key was rotated: the site's other seeds carry the new one; other sites' seeds keep their bytes
    expect(readFileSync(path.join(dir, 'out/devices/brno1-dock-001/seed/user-data')).equals(seedBefore)).toBe(false);
    expect(readFileSync(path.join(dir, 'out/devices/stuttgart3-asm-001/seed/user-data')).equals(otherSiteBefore)).toBe(true);

    const p = await cli('replace', 'brno1-dock-002', '--serial', '10000000d4e5f002', '--mac', 'e4:5f:01:50:01:99');
    expect(p.code, p.stderr).toBe(0);
    expect(listed()).toEqual(active());
    expect(listed()).toContain('brno1-dock-002-r2');
    expect(listed().length).toBe(14);
    await verify();
  }, 300_000);
});
