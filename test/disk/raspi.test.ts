// Raspberry Pi style base (MBR, FAT32 system-boot): personalize -> delta -> materialize, checked with
// sfdisk, fsck.vfat, mtools and bmaptool.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { prepareBase } from '../../scripts/disk/base.ts';
import { decodeDelta } from '../../scripts/disk/delta.ts';
import { materialize } from '../../scripts/disk/materialize.ts';
import { openDeviceImage } from '../../scripts/disk/device-image.ts';
import { deviceBmap } from '../../scripts/disk/device-bmap.ts';
import { personalize, type PersonalizeResult } from '../../scripts/disk/personalize.ts';
import { buildRaspiFixture, deviceSeed, run, sha256, type Fixture } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, mlistAll, readRange, tmpDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['bmaptool', 'e2fsck', 'fsck.vfat', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'sfdisk', 'xz'], 'test/disk/raspi.test.ts');

afterAll(cleanup);

const EPOCH = 1767225600;
let dir: string;
let fx: Fixture;
let r1: PersonalizeResult;
let image: string;

beforeAll(async () => {
  dir = tmpDir('raspi');
  fx = buildRaspiFixture(dir);
  r1 = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-001'), epoch: EPOCH });
  image = path.join(dir, 'device.img');
  await materialize({ base: r1.base, delta: r1.delta, to: image });
});

describe.runIf(HAVE_TOOLS)('raspi-mbr personalize + materialize', () => {
  it('writes a small, deterministic delta and never touches the base', async () => {
    expect(sha256(readFileSync(fx.path))).toBe(fx.sha256);
    expect(r1.delta.length).toBeLessThan(2 * 1024 * 1024);
    expect(r1.delta.length).toBeLessThan(128 * 1024); // in practice a few tens of KiB
    const again = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-001'), epoch: EPOCH });
    expect(sha256(again.delta)).toBe(sha256(r1.delta));
    const other = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-002'), epoch: EPOCH });
    expect(sha256(other.delta)).not.toBe(sha256(r1.delta));
    // every changed block lies inside the boot partition
    for (const x of decodeDelta(r1.delta).extents) {
      expect(x.offset).toBeGreaterThanOrEqual(fx.fatOffset);
      expect(x.offset + x.length).toBeLessThanOrEqual(fx.fatOffset + fx.fatSize);
    }
    expect(r1.seedPartition).toBe(1);
    expect(r1.cmdlineChanged).toBe(true);
  });

  it('keeps the partition table and the root partition byte-identical', () => {
    const dump = (p: string) =>
      run('sfdisk', ['-d', p])
        .replace(new RegExp(path.basename(p), 'g'), 'IMG')
        .replace(/^device:.*$/m, '');
    expect(dump(image)).toBe(dump(fx.path));
    expect(statSync(image).size).toBe(statSync(fx.path).size);
    expect(sha256(readRange(image, 0, fx.fatOffset))).toBe(sha256(readRange(fx.path, 0, fx.fatOffset)));
    expect(sha256(readRange(image, fx.rootOffset, fx.rootSize))).toBe(sha256(readRange(fx.path, fx.rootOffset, fx.rootSize)));
    const root = path.join(dir, 'root.ext4');
    writeFileSync(root, readRange(image, fx.rootOffset, fx.rootSize));
    expect(run('e2fsck', ['-f', '-n', root])).toMatch(/writable: \d+\/\d+ files/);
  });

  it('leaves a clean FAT32 holding exactly the device seed, firmware, kernel and overlays intact', () => {
    fsckFat(image, fx.fatOffset, fx.fatSize, dir);
    const seed = deviceSeed('ulsan1-line1-001');
    for (const f of seed) expect(sha256(mcopyOut(image, fx.fatOffset, f.name, dir)), f.name).toBe(sha256(f.bytes));
    for (const [p, b] of fx.fatFiles) {
      if (['user-data', 'meta-data', 'network-config', 'cmdline.txt'].includes(p)) continue;
      expect(sha256(mcopyOut(image, fx.fatOffset, p, dir)), p).toBe(sha256(b));
    }
    expect(mlistAll(image, fx.fatOffset)).toEqual(mlistAll(fx.path, fx.fatOffset));
    const cmdline = mcopyOut(image, fx.fatOffset, 'cmdline.txt', dir).toString();
    expect(cmdline).toBe(fx.fatFiles.get('cmdline.txt')!.toString().replace(/\n$/, ' cgroup_memory=1 cgroup_enable=memory\n'));
  });

  it('is idempotent: personalizing the materialized image again changes no block', async () => {
    const r2 = await personalize({ basePath: image, baseSha256: sha256(readFileSync(image)), profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-001'), epoch: EPOCH });
    expect(r2.cmdlineChanged).toBe(false);
    expect(decodeDelta(r2.delta).extents).toEqual([]);
  });

  it('removes default seed files the device does not have (no stale network-config)', async () => {
    const files = deviceSeed('dhcp-only').filter((f) => f.name !== 'network-config');
    const r = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'raspi-mbr', files, epoch: EPOCH });
    expect(r.removed).toEqual(['network-config']);
    const out = path.join(dir, 'dhcp.img');
    await materialize({ base: r.base, delta: r.delta, to: out });
    fsckFat(out, fx.fatOffset, fx.fatSize, dir);
    expect(mlistAll(out, fx.fatOffset)).not.toContain('network-config');
  });

  it('writes a sparse image and a .bmap that bmaptool copy accepts and verifies', () => {
    const st = statSync(image);
    expect(st.blocks * 512).toBeLessThan(st.size / 4); // sparse: mostly holes
    expect(st.mode & 0o777).toBe(0o600);
    const bmap = path.join(dir, 'device.bmap');
    expect(readFileSync(bmap, 'utf8')).toMatch(/<bmap version="2.0">/);
    const target = path.join(dir, 'flashed.img');
    execFileSync(tool('bmaptool'), ['copy', '--bmap', bmap, image, target], { stdio: 'pipe' });
    expect(sha256(readFileSync(target))).toBe(sha256(readFileSync(image)));
  });

  it('openDeviceImage reads the same bytes as the materialized image, without writing one', async () => {
    const img = await openDeviceImage(r1.base, r1.delta);
    try {
      const want = readFileSync(image);
      expect(sha256(await img.dev.read(0, img.dev.size))).toBe(sha256(want));
      const x = decodeDelta(r1.delta).extents[0];
      expect(Buffer.from(await img.dev.read(x.offset - 100, 300))).toEqual(want.subarray(x.offset - 100, x.offset + 200));
      expect(img.mapped.length).toBeGreaterThan(0);
    } finally {
      await img.close();
    }
  });

  it('deviceBmap (no image needed) gives a bmap bmaptool verifies against the materialized image, cached per base', async () => {
    for (const id of ['ulsan1-line1-001', 'ulsan1-line1-009']) {
      const r = id === 'ulsan1-line1-001' ? r1 : await personalize({ base: r1.base, profile: 'raspi-mbr', files: deviceSeed(id), epoch: EPOCH });
      const img = path.join(dir, `${id}.img`);
      if (r !== r1) await materialize({ base: r.base, delta: r.delta, to: img });
      const xml = await deviceBmap(r.base, r.delta);
      const bm = path.join(dir, `${id}.device.bmap`);
      writeFileSync(bm, xml);
      execFileSync(tool('bmaptool'), ['copy', '--bmap', bm, r === r1 ? image : img, path.join(dir, `${id}.flashed`)], { stdio: 'pipe' });
    }
    // and the checksums are real: another device's bmap does not verify against this image
    expect(() => execFileSync(tool('bmaptool'), ['copy', '--bmap', path.join(dir, 'ulsan1-line1-009.device.bmap'), image, path.join(dir, 'mismatch')], { stdio: 'pipe' })).toThrow(/checksum/i);
  });

  it('rejects a base whose sha256 does not match the pin, and a delta made for another base', async () => {
    await expect(personalize({ basePath: fx.path, baseSha256: '0'.repeat(64), profile: 'raspi-mbr', files: deviceSeed('x'), epoch: EPOCH })).rejects.toThrow(/sha256 .* but the profile pins 0{64}/);
    const other = await prepareBase({ path: image, sha256: sha256(readFileSync(image)) });
    await expect(materialize({ base: other, delta: r1.delta, to: path.join(dir, 'nope.img') })).rejects.toThrow(/delta was made for base/);
  });

  it('accepts a .img.xz base (decompressed once into a sparse cache) and yields the same delta', async () => {
    execFileSync(tool('xz'), ['-k', '-1', '-T1', fx.path]);
    const xz = `${fx.path}.xz`;
    const cacheDir = path.join(dir, 'cache');
    const base = await prepareBase({ path: xz, sha256: sha256(readFileSync(xz)), cacheDir });
    expect(base.rawSha256).toBe(fx.sha256);
    expect(statSync(base.rawPath).blocks * 512).toBeLessThan(base.size / 4);
    const r = await personalize({ base, profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-001'), epoch: EPOCH });
    expect(sha256(r.delta)).toBe(sha256(r1.delta));
  });
});
