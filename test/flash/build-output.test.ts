// The contract with the build stage: what `edgeforge build --base-image` really writes (manifest.json with
// disk-delta artifacts, base/base.json) is what `edgeforge flash` reads; a flashed file equals
// `edgeforge image materialize` for the same device. Runs the real CLI end to end.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { buildRaspiFixture } from '../disk/fixtures.ts';
import { cleanupTmp, sha, tmp } from './fixture.ts';
const HAVE_TOOLS = requireTools(['mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/flash/build-output.test.ts');

afterAll(cleanupTmp);

const BIN = path.resolve(__dirname, '../../scripts/bin/edgeforge.mjs');

function ef(cwd: string, args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

it.runIf(HAVE_TOOLS)('flashes what build --base-image wrote, identical to image materialize', async () => {
  const dir = tmp('e2e');
  writeFileSync(path.join(dir, 'inv.yaml'), generateInventory(2, { name: 'flash-e2e' }));
  const fx = buildRaspiFixture(path.join(dir, 'fx'));
  let r = ef(dir, ['keys', 'init', '-i', 'inv.yaml', '--keys', 'keys', '--example-admin']);
  expect(r.code, r.err).toBe(0);
  r = ef(dir, ['build', '-i', 'inv.yaml', '--keys', 'keys', '-o', 'out', '--base-image', fx.path]);
  expect(r.code, r.err).toBe(0);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'out/manifest.json'), 'utf8'));
  const ids: string[] = manifest.devices.map((d: { id: string }) => d.id);
  expect(ids).toHaveLength(2);
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--json', '--verify', '--device', ids[0], '--target', 'a.img', '--device', ids[1], '--target', 'b.img']);
  expect(r.code, r.err).toBe(0);
  // the entry sized libuv's thread pool for the cards before node started (4 threads would have been noted)
  expect(r.err).not.toMatch(/thread pool/);
  const doc = JSON.parse(r.out);
  expect(doc.devices.map((d: { id: string; status: string }) => [d.id, d.status])).toEqual([
    [ids[0], 'ok'],
    [ids[1], 'ok'],
  ]);
  for (const [i, f] of ['a.img', 'b.img'].entries()) {
    r = ef(dir, ['image', 'materialize', '-o', 'out', '--device', ids[i], '--to', `m${i}.img`]);
    expect(r.code, r.err).toBe(0);
    expect(sha(readFileSync(path.join(dir, f)))).toBe(sha(readFileSync(path.join(dir, `m${i}.img`))));
  }
  expect(sha(readFileSync(path.join(dir, 'a.img')))).not.toBe(sha(readFileSync(path.join(dir, 'b.img'))));

  // a run that writes no card is never 0: every card refused before writing (a device not in the build, the base
  // image as a target) is 2, each with its reason in --json; one written beside one refused is 1
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--json', '--device', 'not-built-001', '--target', 'x.img', '--device', ids[0], '--target', fx.path]);
  expect(r.code, r.err).toBe(2);
  expect(JSON.parse(r.out).devices).toEqual([
    { id: 'not-built-001', status: 'failed', phase: 'preflight', message: expect.stringMatching(/^device not-built-001 is not in .*manifest\.json: build it first/) },
    { id: ids[0], status: 'failed', phase: 'preflight', message: expect.stringMatching(/is the base image itself: never overwritten/) },
  ]);
  expect(existsSync(path.join(dir, 'x.img'))).toBe(false);
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--json', '--device', 'not-built-001', '--target', 'x.img', '--device', ids[0], '--target', 'd.img']);
  expect(r.code, r.err).toBe(1);
  expect(JSON.parse(r.out).devices.map((d: { status: string }) => d.status)).toEqual(['failed', 'ok']);

  // the manifest is what pins every delta's hash, so flash checks its signature before writing anything
  const mPath = path.join(dir, 'out/manifest.json');
  const signed = readFileSync(mPath);
  writeFileSync(mPath, signed.toString().replace('"fleet"', '"fleet" ').replace(/\n$/, '\n\n'));
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--device', ids[0], '--target', 'c.img']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/refusing to flash: out is not signed by the pinned build key [0-9A-F]{40}: manifest\.json\.asc: .*Nothing was written/s);
  expect(existsSync(path.join(dir, 'c.img'))).toBe(false);
  // a station without the keys directory pins the fingerprint on the command line; a wrong one is refused
  writeFileSync(mPath, signed);
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--keys', 'nowhere', '--device', ids[0], '--target', 'c.img']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/--fingerprint FPR/);
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--keys', 'nowhere', '--fingerprint', 'A'.repeat(40), '--device', ids[0], '--target', 'c.img']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/not the pinned key A{40}/);
  expect(existsSync(path.join(dir, 'c.img'))).toBe(false);
  const fpr = readFileSync(path.join(dir, 'keys/build/signing-key.fingerprint'), 'utf8').trim();
  r = ef(dir, ['flash', '-i', 'inv.yaml', '-o', 'out', '--keys', 'nowhere', '--fingerprint', fpr, '--device', ids[0], '--target', 'c.img']);
  expect(r.code, r.err).toBe(0);
  expect(sha(readFileSync(path.join(dir, 'c.img')))).toBe(sha(readFileSync(path.join(dir, 'a.img'))));
});
