// The fleet base (input base + the EFK3S partition with the K3s airgap files), checked with the real tools:
// sfdisk sees the partition, fsck.vfat finds the FAT clean, mtools reads the files back byte for byte,
// deltas made against it stay small, a materialized device image carries the partition, and a rebuild
// gives the same bytes.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildGptFixture, buildRaspiFixture, deviceSeed, MT_ENV, pseudo, run, sha256, type Fixture } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, readRange, tmpDir } from './helpers.ts';
import { prepareBase } from '../../scripts/disk/base.ts';
import { deriveFleetBase, payloadGeometry, AIRGAP_FAT_LABEL, AIRGAP_PART_NAME, type PayloadFile } from '../../scripts/disk/fleet-base.ts';
import { personalize, MAX_DELTA_BYTES } from '../../scripts/disk/personalize.ts';
import { materialize } from '../../scripts/disk/materialize.ts';
import { GPT_TYPES } from '../../scripts/disk/guid.ts';
const HAVE_TOOLS = requireTools(['blkid', 'fsck.vfat', 'mcopy', 'mdir', 'minfo', 'mke2fs', 'mkfs.vfat', 'mlabel', 'mtype', 'sfdisk', 'sgdisk'], 'test/disk/fleet-base.test.ts');

const EPOCH = 1767225600;
let dir: string;
let payload: PayloadFile[];

function payloadFiles(d: string): PayloadFile[] {
  // sizes that are not cluster multiples, so the zero tail of the last cluster is exercised
  const blobs: [string, Buffer][] = [
    ['k3s-arm64', pseudo('k3s-binary', 1_234_567)],
    ['k3s-airgap-images-arm64.tar.zst', pseudo('k3s-images', 2_345_678)],
    ['install.sh', Buffer.from('#!/bin/sh\necho fake k3s installer\n')],
  ];
  return blobs.map(([name, bytes]) => {
    const p = path.join(d, name);
    writeFileSync(p, bytes);
    return { name, path: p, sha256: sha256(bytes), bytes: bytes.length };
  });
}

function sfdiskJson(img: string): { label: string; partitions: { node: string; start: number; size: number; type: string; name?: string; uuid?: string }[]; lastlba?: number } {
  return JSON.parse(run('sfdisk', ['-J', img])).partitiontable;
}

beforeAll(() => {
  dir = tmpDir('fleet-base');
  payload = payloadFiles(dir);
});
afterAll(cleanup);

async function derive(fx: Fixture, out: string) {
  const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
  return deriveFleetBase({ base, files: payload, outDir: out });
}

function checkFiles(img: string, offset: number) {
  for (const f of payload) expect(sha256(mcopyOut(img, offset, f.name, dir)), f.name).toBe(f.sha256);
  expect(run('mlabel', ['-s', '-i', `${img}@@${offset}`, '::'])).toMatch(new RegExp(`Volume label is ${AIRGAP_FAT_LABEL}\\b`));
  // what udev's /dev/disk/by-label/EFK3S comes from
  expect(run('blkid', ['-p', '-O', String(offset), '-o', 'export', img])).toMatch(/^LABEL=EFK3S$[\s\S]*^VERSION=FAT32$[\s\S]*^TYPE=vfat$/m);
}

describe.runIf(HAVE_TOOLS)('fleet base on a Raspberry Pi (MBR) image', () => {
  let fx: Fixture;
  let out: string;
  let d: Awaited<ReturnType<typeof derive>>;
  beforeAll(async () => {
    fx = buildRaspiFixture(path.join(dir, 'raspi'));
    out = path.join(dir, 'out-raspi');
    d = await derive(fx, out);
  }, 120_000);

  it('adds partition 3, type 0x0c, 1 MiB aligned after root, with a clean FAT32 labelled EFK3S holding the three files', () => {
    const t = sfdiskJson(d.base.rawPath);
    expect(t.label).toBe('dos');
    expect(t.partitions).toHaveLength(3);
    const p3 = t.partitions[2];
    expect(p3.node).toBe(`${d.base.rawPath}3`);
    expect(p3.type).toBe('c');
    expect(p3.start).toBe((fx.rootOffset + fx.rootSize) / 512); // the fixture's root ends on a MiB boundary
    expect(p3.start % 2048).toBe(0);
    expect(p3.size).toBe(payloadGeometry(payload).sectors);
    expect(d.info.partition).toMatchObject({ number: 3, scheme: 'mbr', start: p3.start * 512, size: p3.size * 512, label: AIRGAP_FAT_LABEL });
    // the first two partitions are untouched, byte for byte
    expect(t.partitions.slice(0, 2)).toEqual(sfdiskJson(fx.path).partitions.map((p) => ({ ...p, node: p.node.replace(fx.path, d.base.rawPath) })));
    expect(sha256(readRange(d.base.rawPath, 512, fx.rootOffset + fx.rootSize - 512))).toBe(sha256(readRange(fx.path, 512, fx.rootOffset + fx.rootSize - 512)));
    // the image grew to hold the partition; its sha256 is what the record says
    expect(statSync(d.base.rawPath).size).toBe(d.base.size);
    expect(d.base.size).toBeGreaterThanOrEqual((p3.start + p3.size) * 512);
    expect(sha256(readFileSync(d.base.rawPath))).toBe(d.base.rawSha256);
    expect(d.base.inputSha256).toBe(fx.sha256);
    const fsck = fsckFat(d.base.rawPath, p3.start * 512, p3.size * 512, dir);
    expect(fsck).toMatch(/EFK3S|files/);
    expect(run('minfo', ['-i', `${d.base.rawPath}@@${p3.start * 512}`, '::'])).toMatch(/FAT32|fat32|big size/i);
    checkFiles(d.base.rawPath, p3.start * 512);
  });

  it('is reused when nothing changed, and rebuilt byte-identical in another output', async () => {
    const again = await derive(fx, out);
    expect(again.reused).toBe(true);
    expect(again.base.rawSha256).toBe(d.base.rawSha256);
    const other = await derive(fx, path.join(dir, 'out-raspi-2'));
    expect(other.reused).toBe(false);
    expect(other.base.rawSha256).toBe(d.base.rawSha256);
    expect(other.info).toEqual(d.info);
  }, 120_000);

  it('device deltas against it stay under the budget, and a materialized image carries the partition and the seed', async () => {
    const p = await personalize({ base: d.base, profile: 'raspi-mbr', files: deviceSeed('ulsan1-line1-001'), epoch: EPOCH });
    expect(p.delta.length).toBeLessThan(MAX_DELTA_BYTES);
    expect(p.delta.length).toBeLessThan(256 * 1024); // the airgap files are in the base, not here
    const img = path.join(dir, 'dev-raspi.img');
    await materialize({ base: d.base, delta: p.delta, to: img });
    const t = sfdiskJson(img);
    expect(t.partitions[2]).toMatchObject({ type: 'c', start: d.info.partition.start / 512, size: d.info.partition.size / 512 });
    checkFiles(img, d.info.partition.start);
    const ud = execFileSync(tool('mtype'), ['-i', `${img}@@${fx.fatOffset}`, '::user-data'], { env: MT_ENV });
    expect(sha256(ud)).toBe(sha256(deviceSeed('ulsan1-line1-001')[0].bytes));
  }, 120_000);

  it('a changed airgap file gives another fleet base and removes the old one', async () => {
    const o2 = path.join(dir, 'out-raspi-3');
    await derive(fx, o2);
    const changed = payloadFiles(path.join(dir));
    const inst = changed.find((f) => f.name === 'install.sh')!;
    writeFileSync(inst.path, '#!/bin/sh\necho another installer\n');
    const bytes = readFileSync(inst.path);
    const files = changed.map((f) => (f.name === 'install.sh' ? { ...f, sha256: sha256(bytes), bytes: bytes.length } : f));
    try {
      const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
      const d2 = await deriveFleetBase({ base, files, outDir: o2 });
      expect(d2.base.rawSha256).not.toBe(d.base.rawSha256);
      expect(readdirSync(path.join(o2, 'base')).sort()).toEqual([path.basename(d2.info.path), path.basename(d2.info.path).replace(/\.img$/, '.json')].sort());
    } finally {
      payloadFiles(dir); // restore the shared payload files
    }
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('fleet base on a UEFI (GPT) image', () => {
  let fx: Fixture;
  let d: Awaited<ReturnType<typeof derive>>;
  beforeAll(async () => {
    fx = buildGptFixture(path.join(dir, 'gpt'));
    d = await derive(fx, path.join(dir, 'out-gpt'));
  }, 120_000);

  it('adds partition "edgeforge-k3s" (basic data) after root, grows the image and writes a valid backup GPT at the new end', () => {
    const t = sfdiskJson(d.base.rawPath);
    expect(t.label).toBe('gpt');
    const p = t.partitions.find((x) => x.name === AIRGAP_PART_NAME)!;
    expect(p).toBeDefined();
    expect(p.type).toBe(GPT_TYPES.basicData);
    expect(p.node).toBe(`${d.base.rawPath}3`);
    expect(p.start).toBe((fx.rootOffset + fx.rootSize) / 512);
    expect(p.start % 2048).toBe(0);
    expect(p.uuid).toBe(d.info.partition.uuid);
    const sectors = statSync(d.base.rawPath).size / 512;
    expect(sectors % 2048).toBe(0);
    expect(t.lastlba).toBe(sectors - 34);
    expect(p.start + p.size - 1).toBeLessThanOrEqual(sectors - 34);
    // both headers and entry arrays consistent (sfdisk checks the backup; sgdisk -v checks everything)
    const v = spawnSync(tool('sfdisk'), ['--verify', d.base.rawPath], { encoding: 'utf8' });
    expect(v.status, v.stdout + v.stderr).toBe(0);
    expect(v.stderr).toBe('');
    const sg = spawnSync(tool('sgdisk'), ['-v', d.base.rawPath], { encoding: 'utf8' });
    expect(sg.status, sg.stdout + sg.stderr).toBe(0);
    expect(sg.stdout).toMatch(/No problems found/);
    // no stale backup header left where the input image ended
    const oldEnd = statSync(fx.path).size;
    expect(readRange(d.base.rawPath, oldEnd - 512, 8).toString('latin1')).not.toBe('EFI PART');
    expect(readRange(d.base.rawPath, sectors * 512 - 512, 8).toString('latin1')).toBe('EFI PART');
    fsckFat(d.base.rawPath, p.start * 512, p.size * 512, dir);
    checkFiles(d.base.rawPath, p.start * 512);
  });

  it('a uefi-gpt device delta (CIDATA partition in a gap) stays small and the materialized image keeps both partitions', async () => {
    const p = await personalize({ base: d.base, profile: 'uefi-gpt', files: deviceSeed('changwon2-server'), epoch: EPOCH });
    expect(p.delta.length).toBeLessThan(MAX_DELTA_BYTES);
    const img = path.join(dir, 'dev-gpt.img');
    await materialize({ base: d.base, delta: p.delta, to: img });
    const t = sfdiskJson(img);
    expect(t.partitions.map((x) => x.name).sort()).toEqual(['CIDATA', 'UEFI', 'edgeforge-k3s', 'root'].sort());
    expect(spawnSync(tool('sfdisk'), ['--verify', img], { encoding: 'utf8' }).status).toBe(0);
    checkFiles(img, d.info.partition.start);
  }, 120_000);
});
