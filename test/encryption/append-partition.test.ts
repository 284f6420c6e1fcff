// edv_append_partition on the layout edgeforge images have with an airgap install: root followed by the
// K3s airgap partition (EFK3S). The data volume must go after that partition, not into the sub-MiB gap between
// root and it. Run on real fleet bases (scripts/disk/fleet-base.ts on the disk fixtures) written to a
// larger "card", with the real sfdisk; the airgap FAT is checked intact afterwards.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGptFixture, buildRaspiFixture, pseudo, run, sha256, type Fixture } from '../disk/fixtures.ts';
import { cleanup, fsckFat, mcopyOut, tmpDir } from '../disk/helpers.ts';
import { prepareBase } from '../../scripts/disk/base.ts';
import { deriveFleetBase, type PayloadFile } from '../../scripts/disk/fleet-base.ts';
import { functionsPrelude, sh } from './helpers.ts';
const HAVE_TOOLS = requireTools(
  ['cryptsetup', 'curl', 'fsck.vfat', 'jose', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'sfdisk', 'socat', 'tangd', 'tangd-keygen'],
  'test/encryption/append-partition.test.ts',
);

const SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/render/encryption/sh');
let dir: string;
let files: PayloadFile[];

function append(img: string, root: number, minMib: number, tag: string) {
  return sh([functionsPrelude(), `. ${SH}/volume.sh`, `edv_append_partition '${img}' ${root} ${minMib}`].join('\n'), { EDGEFORGE_ROOT: path.join(dir, `r-${tag}`) });
}

type Part = { node: string; start: number; size: number; type: string; name?: string };
const parts = (img: string): Part[] => JSON.parse(run('sfdisk', ['-J', img])).partitiontable.partitions;

/** the fleet base copied to a "card" of `mib` MiB (what flash + first boot see) */
async function card(fx: Fixture, tag: string, mib: number): Promise<{ img: string; airgap: { start: number; size: number } }> {
  const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
  const d = await deriveFleetBase({ base, files, outDir: path.join(dir, `out-${tag}`) });
  const img = path.join(dir, `${tag}-card.img`);
  copyFileSync(d.base.rawPath, img);
  run('truncate', ['-s', `${mib}M`, img]);
  return { img, airgap: { start: d.info.partition.start / 512, size: d.info.partition.size / 512 } };
}

function airgapIntact(img: string, start: number, size: number) {
  fsckFat(img, start * 512, size * 512, dir);
  for (const f of files) expect(sha256(mcopyOut(img, start * 512, f.name, dir))).toBe(f.sha256);
}

beforeAll(() => {
  dir = tmpDir('edv-append');
  files = [
    ['k3s-arm64', pseudo('append-k3s', 300_000)],
    ['k3s-airgap-images-arm64.tar.zst', pseudo('append-images', 500_000)],
    ['install.sh', Buffer.from('#!/bin/sh\n')],
  ].map(([name, bytes]) => {
    const p = path.join(dir, name as string);
    writeFileSync(p, bytes as Buffer);
    return { name: name as string, path: p, sha256: sha256(bytes as Buffer), bytes: (bytes as Buffer).length };
  });
});
afterAll(cleanup);

describe.runIf(HAVE_TOOLS)('the data partition after the K3s airgap partition', () => {
  it('MBR (Raspberry Pi): root p2, EFK3S p3 right after it -> the data volume is p4, after p3, to the end of the card', async () => {
    const { img, airgap } = await card(buildRaspiFixture(path.join(dir, 'raspi')), 'mbr', 160);
    const before = parts(img);
    expect(before[2]).toMatchObject({ start: airgap.start, type: 'c' });
    const r = await append(img, 2, 32, 'mbr');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('4');
    const p4 = parts(img)[3];
    const start = Math.ceil((airgap.start + airgap.size) / 2048) * 2048;
    expect(p4).toMatchObject({ start, type: '83' });
    expect(p4.size).toBe(Math.floor((160 * 2048 - start) / 2048) * 2048);
    expect(p4.size % 2048).toBe(0);
    expect(parts(img).slice(0, 3)).toEqual(before); // nothing else moved
    expect(spawnSync(tool('sfdisk'), ['--verify', img], { encoding: 'utf8' }).status).toBe(0);
    airgapIntact(img, airgap.start, airgap.size);
    // all four primaries in use now: a second run refuses (nothing free after p4 either)
    const again = await append(img, 2, 32, 'mbr');
    expect(again.status).toBe(78); // permanent: the card does not grow
    expect(again.stderr).toMatch(/only 0 MiB free after the root partition .*\(and the partitions after it\).*need 32 MiB/);
  }, 120_000);

  it('GPT (UEFI): the backup GPT moves to the end of the card, the data volume follows edgeforge-k3s', async () => {
    const { img, airgap } = await card(buildGptFixture(path.join(dir, 'gpt')), 'gpt', 192);
    const r = await append(img, 2, 32, 'gpt');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('4');
    const all = parts(img);
    expect(all.find((p) => p.name === 'edgeforge-k3s')).toMatchObject({ start: airgap.start, size: airgap.size });
    const data = all.find((p) => p.name === 'edgeforge-data')!;
    const start = Math.ceil((airgap.start + airgap.size) / 2048) * 2048;
    expect(data).toMatchObject({ node: `${img}4`, start, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' });
    expect(data.size % 2048).toBe(0);
    expect(data.start + data.size - 1).toBeLessThanOrEqual(192 * 2048 - 34);
    expect(192 * 2048 - 34 - (data.start + data.size - 1)).toBeLessThan(2048);
    const v = spawnSync(tool('sfdisk'), ['--verify', img], { encoding: 'utf8' });
    expect(v.status, v.stdout + v.stderr).toBe(0);
    airgapIntact(img, airgap.start, airgap.size);
  }, 120_000);
});
