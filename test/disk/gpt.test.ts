// UEFI style base (GPT: ESP + root, free space after root): the seed becomes a CIDATA partition in the gap
// before the ESP. Checked with sfdisk, blkid, fsck.vfat, mtools and bmaptool.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { FileDev } from '../../scripts/disk/block.ts';
import { readGpt } from '../../scripts/disk/gpt.ts';
import { materialize } from '../../scripts/disk/materialize.ts';
import { personalize, type PersonalizeResult } from '../../scripts/disk/personalize.ts';
import { buildGptFixture, deviceSeed, run, sha256, type Fixture } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, mlistAll, readRange, tmpDir } from './helpers.ts';
import { open } from 'node:fs/promises';
const HAVE_TOOLS = requireTools(['blkid', 'bmaptool', 'fsck.vfat', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/disk/gpt.test.ts');

afterAll(cleanup);

const EPOCH = 1767225600;
let dir: string;
let fx: Fixture;
let r1: PersonalizeResult;
let image: string;

interface SfdiskJson {
  partitiontable: { label: string; id: string; firstlba: number; lastlba: number; partitions: { node: string; start: number; size: number; type: string; uuid: string; name?: string }[] };
}
const table = (p: string) => (JSON.parse(run('sfdisk', ['--json', p])) as SfdiskJson).partitiontable;

beforeAll(async () => {
  dir = tmpDir('gpt');
  fx = buildGptFixture(dir);
  r1 = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'uefi-gpt', files: deviceSeed('plant7-arm-001'), epoch: EPOCH });
  image = path.join(dir, 'device.img');
  await materialize({ base: r1.base, delta: r1.delta, to: image });
});

describe.runIf(HAVE_TOOLS)('uefi-gpt personalize + materialize', () => {
  it('adds a CIDATA partition in the gap before the ESP; other entries and the free space after root unchanged', () => {
    const before = table(fx.path);
    const after = table(image);
    expect(after.id).toBe(before.id);
    expect(after.lastlba).toBe(before.lastlba);
    const strip = (ps: SfdiskJson['partitiontable']['partitions']) => ps.map(({ node, ...rest }) => ({ ...rest, n: node.slice(-1) }));
    const added = after.partitions.find((p) => p.name === 'CIDATA')!;
    expect(added).toBeTruthy();
    expect(strip(after.partitions.filter((p) => p !== added))).toEqual(strip(before.partitions));
    expect(added.type).toBe('EBD0A0A2-B9E5-4433-87C0-68B6B72699C7');
    expect(added.start).toBeGreaterThanOrEqual(34);
    expect(added.start + added.size).toBeLessThanOrEqual(2048);
    const root = before.partitions.find((p) => p.name === 'root')!;
    expect(Math.max(...after.partitions.map((p) => p.start + p.size))).toBe(root.start + root.size); // nothing after root
    expect(r1.createdPartition).toBe(true);
    expect(r1.seedPartition).toBe(3);
  });

  it('keeps both GPT copies valid (CRCs checked by our reader and by sfdisk)', async () => {
    const fh = await open(image, 'r');
    try {
      const { size } = await fh.stat();
      const gpt = await readGpt(new FileDev(fh, size));
      expect(gpt?.backup).toBeTruthy();
      expect(gpt!.entries.map((e) => e.name)).toEqual(['UEFI', 'root', 'CIDATA']);
    } finally {
      await fh.close();
    }
    const out = execFileSync(tool('sfdisk'), ['--verify', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // the image's path is in sfdisk's output: a random temp name like …GcrcRd… must not read as a CRC complaint
    expect(out.split(image).join('IMAGE')).not.toMatch(/corrupt|invalid|CRC/i);
  });

  it('the CIDATA filesystem is clean, labelled, and holds exactly the seed files', () => {
    const cidata = table(image).partitions.find((p) => p.name === 'CIDATA')!;
    const off = cidata.start * 512;
    fsckFat(image, off, cidata.size * 512, dir);
    expect(run('blkid', ['-p', '-o', 'export', '-O', String(off), image])).toMatch(/^LABEL=CIDATA$/m);
    const seed = deviceSeed('plant7-arm-001');
    expect(mlistAll(image, off)).toEqual(seed.map((f) => f.name).sort());
    for (const f of seed) expect(sha256(mcopyOut(image, off, f.name, dir))).toBe(sha256(f.bytes));
  });

  it('leaves the ESP and the root partition byte-identical', () => {
    expect(sha256(readRange(image, fx.fatOffset, fx.fatSize))).toBe(sha256(readRange(fx.path, fx.fatOffset, fx.fatSize)));
    expect(sha256(readRange(image, fx.rootOffset, fx.rootSize))).toBe(sha256(readRange(fx.path, fx.rootOffset, fx.rootSize)));
    for (const [p, b] of fx.fatFiles) expect(sha256(mcopyOut(image, fx.fatOffset, p, dir))).toBe(sha256(b));
    expect(sha256(readFileSync(fx.path))).toBe(fx.sha256);
  });

  it('is deterministic, small, and bmaptool copy accepts the bmap (new FAT blocks in the hole are mapped)', async () => {
    const again = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'uefi-gpt', files: deviceSeed('plant7-arm-001'), epoch: EPOCH });
    expect(sha256(again.delta)).toBe(sha256(r1.delta));
    expect(r1.delta.length).toBeLessThan(2 * 1024 * 1024);
    execFileSync(tool('bmaptool'), ['copy', '--bmap', path.join(dir, 'device.bmap'), image, path.join(dir, 'flashed.img')], { stdio: 'pipe' });
    expect(sha256(readFileSync(path.join(dir, 'flashed.img')))).toBe(sha256(readFileSync(image)));
    // a used card: bmaptool truncates regular files, so do what it does on a block device by hand: write only the
    // mapped ranges over garbage. The new CIDATA FAT (made in a hole of the base) must still come out clean.
    const xml = readFileSync(path.join(dir, 'device.bmap'), 'utf8');
    const img = readFileSync(image);
    const card = Buffer.alloc(img.length, 0xa5);
    for (const m of xml.matchAll(/<Range chksum="[0-9a-f]{64}"> (\d+)(?:-(\d+))? <\/Range>/g)) {
      const first = Number(m[1]);
      const last = Number(m[2] ?? m[1]);
      img.copy(card, first * 4096, first * 4096, (last + 1) * 4096);
    }
    const cardPath = path.join(dir, 'card.img');
    writeFileSync(cardPath, card);
    const cidata = table(cardPath).partitions.find((p) => p.name === 'CIDATA')!;
    fsckFat(cardPath, cidata.start * 512, cidata.size * 512, dir);
    for (const f of deviceSeed('plant7-arm-001')) expect(sha256(mcopyOut(cardPath, cidata.start * 512, f.name, dir))).toBe(sha256(f.bytes));
  });

  it('refuses a base with no gap before the last partition, pointing at the alternative', async () => {
    const tight = path.join(dir, 'tight.img');
    writeFileSync(tight, '');
    run('truncate', ['-s', String(12 * 1024 * 1024), tight]);
    run(
      'sfdisk',
      ['-q', tight],
      'label: gpt\nfirst-lba: 34\nstart=34, size=20000, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="UEFI"\nstart=20034, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n',
    );
    await expect(personalize({ basePath: tight, baseSha256: sha256(readFileSync(tight)), profile: 'uefi-gpt', files: deviceSeed('x'), epoch: EPOCH })).rejects.toThrow(
      /no unallocated gap .* fat-partition on the ESP/,
    );
  });
});
