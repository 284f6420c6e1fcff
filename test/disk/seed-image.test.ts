// The NoCloud seed image: fsck.vfat clean, label CIDATA, mtools reads every file back byte-identical,
// and the same inputs give the same bytes.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSeedImage } from '../../scripts/disk/seed-image.ts';
import { deviceSeed, pseudo, run, sha256 } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, mlistAll, tmpDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['blkid', 'fsck.vfat', 'mcopy', 'mdir', 'minfo', 'mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/disk/seed-image.test.ts');

afterAll(cleanup);

const EPOCH = 1767225600;

describe.runIf(HAVE_TOOLS)('makeSeedImage', () => {
  it('makes a CIDATA FAT that fsck.vfat accepts and mtools reads back identical', async () => {
    const dir = tmpDir('seed');
    const files = [...deviceSeed('ulsan1-line1-001'), { name: 'edgeforge/firstboot.sh', bytes: pseudo('fb', 40_000) }];
    const img = await makeSeedImage(files, { epoch: EPOCH });
    const p = path.join(dir, 'seed.img');
    writeFileSync(p, img);
    fsckFat(p, 0, img.length, dir);
    expect(run('blkid', ['-o', 'export', p])).toMatch(/^LABEL=CIDATA$/m);
    expect(run('blkid', ['-o', 'export', p])).toMatch(/^TYPE=vfat$/m);
    expect(mlistAll(p, 0)).toEqual(['edgeforge/', 'edgeforge/firstboot.sh', 'meta-data', 'network-config', 'user-data']);
    for (const f of files) expect(sha256(mcopyOut(p, 0, f.name, dir)), f.name).toBe(sha256(f.bytes));
    // mtools shows the epoch as the file time (FAT stores UTC here)
    expect(run('mdir', ['-i', p, '::'])).toMatch(/2026-01-01 +0:00/);
  });

  it('is deterministic and differs between devices', async () => {
    const a = await makeSeedImage(deviceSeed('dev-a'), { epoch: EPOCH });
    const a2 = await makeSeedImage([...deviceSeed('dev-a')].reverse(), { epoch: EPOCH });
    const b = await makeSeedImage(deviceSeed('dev-b'), { epoch: EPOCH });
    const a3 = await makeSeedImage(deviceSeed('dev-a'), { epoch: EPOCH + 86400 });
    expect(sha256(a2)).toBe(sha256(a));
    expect(sha256(b)).not.toBe(sha256(a));
    expect(sha256(a3)).not.toBe(sha256(a));
    expect(a.length).toBe(1024 * 1024);
  });

  it('grows to fit large payloads (FAT16 beyond 16 MiB)', async () => {
    const dir = tmpDir('seedbig');
    const big = { name: 'airgap/k3s-airgap-images.tar', bytes: pseudo('airgap', 20 * 1024 * 1024) };
    const img = await makeSeedImage([...deviceSeed('x'), big], { epoch: EPOCH });
    const p = path.join(dir, 'seed.img');
    writeFileSync(p, img);
    fsckFat(p, 0, img.length, dir);
    expect(run('minfo', ['-i', p, '::'])).toMatch(/FAT16|fat_bits=16|16-bit/i);
    expect(sha256(mcopyOut(p, 0, big.name, dir))).toBe(sha256(big.bytes));
  });

  it('refuses names that collide in FAT (case-insensitive)', async () => {
    await expect(
      makeSeedImage(
        [
          { name: 'user-data', bytes: Buffer.from('a') },
          { name: 'USER-DATA', bytes: Buffer.from('b') },
        ],
        { epoch: EPOCH },
      ),
    ).rejects.toThrow(/twice/);
  });
});
