// The FAT engine against dosfstools and mtools: filesystems made by mkfs.vfat and filled by mcopy,
// changed by our code, then checked by fsck.vfat and read back by mtools.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDev } from '../../scripts/disk/block.ts';
import { FatFs } from '../../scripts/disk/fat/fs.ts';
import { mkfsFat } from '../../scripts/disk/fat/mkfs.ts';
import { MT_ENV, pseudo, run, sha256 } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, mlistAll, tmpDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['blkid', 'fsck.vfat', 'mcopy', 'mdir', 'minfo', 'mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/disk/fat.test.ts');

afterAll(cleanup);

const EPOCH = 1767225600; // 2026-01-01T00:00:00Z

const cases = [
  { type: 12, kib: 4096, extra: [] as string[] },
  { type: 16, kib: 20480, extra: [] as string[] },
  { type: 32, kib: 40960, extra: ['-s', '1'] },
] as const;

describe.runIf(HAVE_TOOLS).each(cases)('FAT$type made by mkfs.vfat', ({ type, kib, extra }) => {
  it('replaces, creates and deletes files; fsck.vfat is clean and mtools reads everything back', async () => {
    const dir = tmpDir(`fat${type}`);
    const img = path.join(dir, 'fs.img');
    execFileSync(tool('mkfs.vfat'), ['-C', '-F', String(type), ...extra, '-n', 'TESTVOL', img, String(kib)], { stdio: 'ignore' });
    // existing content, put there by mtools
    const keep = new Map<string, Buffer>([
      ['KEEP.BIN', pseudo('keep', 70_000)],
      ['sub/dir/Keep Me Too.dat', pseudo('keep2', 3_000)],
      ['old-config.txt', Buffer.from('old\n'.repeat(3000))],
      ['shrinks.bin', pseudo('shrink', 50_000)],
      ['gone.txt', Buffer.from('delete me')],
    ]);
    const stage = path.join(dir, 'stage');
    for (const [p, b] of keep) {
      mkdirSync(path.dirname(path.join(stage, p)), { recursive: true });
      writeFileSync(path.join(stage, p), b);
    }
    run('mcopy', ['-s', '-i', img, ...readdirSync(stage).map((n) => path.join(stage, n)), '::']);
    const bytes = new Uint8Array(readFileSync(img));
    const dev = new MemoryDev(bytes);
    const fs = await FatFs.open(dev, { epoch: EPOCH });
    expect(fs.layout.type).toBe(type);
    // our reader sees what mtools wrote
    for (const [p, b] of keep) expect(Buffer.from(await fs.readFile(p))).toEqual(b);

    const grown = pseudo('grown', 120_000);
    const small = Buffer.from('now tiny');
    const created = new Map<string, Buffer>([
      ['a-rather-long-file-name-that-needs-several-lfn-slots.yaml', pseudo('long', 9_000)],
      ['new/deep/dir/user-data', Buffer.from('#cloud-config\n')],
      ['UPPER.TXT', Buffer.from('upper')],
      ['empty', Buffer.alloc(0)],
      ['Mixed Case Name.Json', Buffer.from('{}')],
    ]);
    for (let i = 0; i < 40; i++) created.set(`sub/many/file-${String(i).padStart(3, '0')}.txt`, pseudo(`m${i}`, 700 * i)); // grows the directory past one cluster
    await fs.writeFile('old-config.txt', grown);
    await fs.writeFile('shrinks.bin', small);
    expect(await fs.remove('gone.txt')).toBe(true);
    for (const [p, b] of created) await fs.writeFile(p, b);
    await fs.flush();
    writeFileSync(img, bytes);

    expect(fsckFat(img, 0, bytes.length, dir)).toMatch(/clusters/);
    const want = new Map<string, Buffer>([...keep, ...created, ['old-config.txt', grown], ['shrinks.bin', small]]);
    want.delete('gone.txt');
    for (const [p, b] of want) expect(sha256(mcopyOut(img, 0, p, dir)), p).toBe(sha256(b));
    const listed = mlistAll(img, 0).filter((p) => !p.endsWith('/'));
    expect(listed).toEqual([...want.keys()].sort());
  });
});

describe.runIf(HAVE_TOOLS)('mkfsFat (our own formatter)', () => {
  it.each([
    [12, 1024],
    [16, 16 * 1024],
    [32, 40 * 1024],
  ] as const)('FAT%i passes fsck.vfat and mtools, and is deterministic', async (type, kib) => {
    const dir = tmpDir(`mkfs${type}`);
    const make = async () => {
      const bytes = new Uint8Array(kib * 1024);
      const dev = new MemoryDev(bytes);
      await mkfsFat(dev, { type, label: 'EDGE', volumeId: 0xc0ffee, epoch: EPOCH });
      const fs = await FatFs.open(dev, { epoch: EPOCH });
      await fs.writeFile('dir/file.txt', Buffer.from('hello'));
      await fs.writeFile('big.bin', pseudo('big', 300_000));
      await fs.flush();
      return bytes;
    };
    const a = await make();
    expect(sha256(await make())).toBe(sha256(a));
    const img = path.join(dir, 'fs.img');
    writeFileSync(img, a);
    expect(fsckFat(img, 0, a.length, dir)).toMatch(/: 4 files, /);
    expect(run('minfo', ['-i', img, '::'])).toMatch(new RegExp(`FAT${type}|fat_bits=${type}|${type}-bit`, 'i'));
    expect(mcopyOut(img, 0, 'big.bin', dir)).toEqual(pseudo('big', 300_000));
    expect(execFileSync(tool('blkid'), ['-o', 'export', img], { env: MT_ENV, encoding: 'utf8' })).toMatch(/LABEL=EDGE/);
  });
});
