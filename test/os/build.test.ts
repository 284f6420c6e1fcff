// `edgeforge build --base-image` of a fleet with OS updates: the A/B base is derived once (slot A = the release
// whose bundle was made from that image), deltas apply to it, `image materialize` gives a card sfdisk reads as
// ESP, root A, root B and the seed; the manifest lists every ring's bundle digest; the bundle carries the
// updater; devices of other profiles keep single-root cards.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { currentState } from '../../scripts/render/os/slots.ts';
import { parse } from 'yaml';
import { runCli } from '../helpers.ts';
import { buildGptFixture } from '../disk/fixtures.ts';
import { cleanup, tmpDir } from '../disk/helpers.ts';
import { osFleetInventory } from '../../scripts/testkit/os-fleet.ts';

const HAVE = requireTools(['rauc', 'mksquashfs', 'openssl', 'e2fsck', 'resize2fs', 'mke2fs', 'mkfs.vfat', 'mcopy', 'sfdisk', 'sgdisk', 'mtype'], 'test/os/build.test.ts');
const env = { SOURCE_DATE_EPOCH: '1767225600' };

let dir: string;
afterAll(cleanup);

describe.runIf(HAVE)('edgeforge build with os:', () => {
  let inv: string;
  let keys: string;
  let fx: ReturnType<typeof buildGptFixture>;
  const out = () => path.join(dir, 'out');

  beforeAll(async () => {
    dir = tmpDir('os-build');
    inv = path.join(dir, 'fleet.yaml');
    keys = path.join(dir, 'keys');
    fx = buildGptFixture(path.join(dir, 'uefi'));
    writeFileSync(inv, osFleetInventory());
    expect((await runCli(['keys', 'init', '--example-admin', '--keys', keys, '-i', inv])).code).toBe(0);
    const b = await runCli(['os', 'bundle', '-i', inv, '--keys', keys, '--base-image', fx.path, '--version', '2026.12.1', '--to', path.join(dir, 'os')], { env });
    expect(b.code, b.stderr).toBe(0);
    const releases = parse(b.stdout.replace(/^#.*\n/, ''));
    writeFileSync(inv, osFleetInventory({ os: { version: '2026.12.1', releases, source: { url: 'https://os-cache.example.com/edgeforge-os/' } } }));
  });

  it('derives the A/B base, slot A holding the release made from that image, and lists the bundle digests in the signed manifest', async () => {
    const r = await runCli(['build', '-i', inv, '-o', out(), '--keys', keys, '--base-image', fx.path, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(path.join(out(), 'manifest.json'), 'utf8'));
    expect(m.baseImage.abBase).toMatchObject({ layout: 'uefi-gpt', version: '2026.12.1' });
    expect(existsSync(path.join(out(), m.baseImage.abBase.path))).toBe(true);
    expect(m.os).toEqual({
      rings: [
        { ring: 'canary', version: '2026.12.1' },
        { ring: 'stable', version: '2026.12.1' },
      ],
      bundles: [{ version: '2026.12.1', layout: 'uefi-gpt', file: 'edgeforge-os-2026.12.1-uefi-gpt.raucb', sha256: parse(readFileSync(inv, 'utf8')).os.releases['2026.12.1']['uefi-gpt'].sha256 }],
    });
    expect((await runCli(['verify', out(), '--keys', keys])).code).toBe(0);
    // the bundle: the updater, its timer in the site's window, RAUC's keyring = the fleet's OS-update certificate
    const b = path.join(out(), 'devices/plant-b-001/bundle/os');
    expect(readFileSync(path.join(b, 'keyring.pem'), 'utf8')).toBe(readFileSync(path.join(keys, 'os-update/signing-cert.pem'), 'utf8'));
    expect(readFileSync(path.join(b, 'os-update.conf'), 'utf8')).toContain("EFO_SOURCE='https://os-cache.example.com/edgeforge-os/'");
    expect(readFileSync(path.join(out(), 'devices/plant-b-001/bundle/firstboot.sh'), 'utf8')).toContain('os_update_install');
    // a card: sfdisk reads ESP, root A, root B, and the seed partition in the gap
    const img = path.join(dir, 'card.img');
    const mat = await runCli(['image', 'materialize', '-o', out(), '--device', 'plant-b-001', '--to', img]);
    expect(mat.code, mat.stderr).toBe(0);
    const t = JSON.parse(execFileSync(tool('sfdisk'), ['-J', img], { encoding: 'utf8' })).partitiontable;
    expect(t.partitions.map((p: { name: string }) => p.name)).toEqual(['edgeforge-esp', 'edgeforge-root-a', 'edgeforge-root-b', 'CIDATA']);
    execFileSync(tool('sgdisk'), ['-v', img], { stdio: 'pipe' });
    const esp = t.partitions[0];
    const records = [0, 1].map((i) => execFileSync(tool('mtype'), ['-i', `${img}@@${esp.start * 512}`, `::edgeforge/os-state.${i}`], { encoding: 'utf8' }));
    expect(currentState(records)).toMatchObject({ A_VERSION: '2026.12.1' });
  });

  it('refuses a base image that no release was made from, and writes nothing', async () => {
    const other = path.join(dir, 'other.img');
    const b = readFileSync(fx.path);
    b[b.length - 1] ^= 1; // another image: its last (free) byte differs
    writeFileSync(other, b);
    const o = path.join(dir, 'out-other');
    const r = await runCli(['build', '-i', inv, '-o', o, '--keys', keys, '--base-image', other], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not the base of any release in os.releases');
    expect(existsSync(path.join(o, 'manifest.json'))).toBe(false);
  });

  it('leaves the devices of profiles without OS updates on single-root cards', async () => {
    const text = readFileSync(inv, 'utf8');
    const doc = parse(text);
    doc.os.profiles = ['pi4'];
    writeFileSync(path.join(dir, 'pi-only.yaml'), JSON.stringify(doc));
    const o = path.join(dir, 'out-plain');
    const r = await runCli(['build', '-i', path.join(dir, 'pi-only.yaml'), '-o', o, '--keys', keys, '--base-image', fx.path, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(path.join(o, 'manifest.json'), 'utf8'));
    expect(m.baseImage.abBase).toBeUndefined();
    expect(existsSync(path.join(o, 'devices/plant-b-001/bundle/os'))).toBe(false);
    expect(readFileSync(path.join(o, 'devices/plant-b-001/bundle/firstboot.sh'), 'utf8')).not.toContain('os_update_install');
  });
});
