// The A/B layouts (inventory os:, docs/os-updates.md) built from the test base images and read back with the
// standard tools: sfdisk and sgdisk see the partitions, fsck.vfat finds the FATs clean, mtools reads the boot
// files, grub-editenv reads the environment RAUC will edit, grub-script-check parses GRUB's configuration,
// e2fsck finds slot A's root clean and byte-identical to the base's, and the per-device seed still goes where
// the profile says on top of it.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildGptFixture, buildRaspiFixture, deviceSeed, pseudo, run, sha256, type Fixture } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, readRange, tmpDir } from './helpers.ts';
import { prepareBase } from '../../scripts/disk/base.ts';
import { deriveAbBase } from '../../scripts/disk/ab-base.ts';
import { deriveFleetBase } from '../../scripts/disk/fleet-base.ts';
import { personalize } from '../../scripts/disk/personalize.ts';
import { loadProfile } from '../../scripts/disk/profiles.ts';
import { GPT_TYPES } from '../../scripts/disk/guid.ts';
import { autobootTxt } from '../../scripts/render/os/boot.ts';
import { currentState, fixedSizeText, piDiskSignature, piPartuuid } from '../../scripts/render/os/slots.ts';
import { OS_UPDATE } from '../../scripts/device/layout.ts';

const HAVE_TOOLS = requireTools(
  ['blkid', 'e2fsck', 'fsck.vfat', 'grub-editenv', 'grub-script-check', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'mtype', 'sfdisk', 'sgdisk'],
  'test/disk/ab-base.test.ts',
);

const EPOCH = 1767225600;
const GB = 1e9;
let dir: string;

interface SfdiskTable {
  label: string;
  id: string;
  partitions: { node: string; start: number; size: number; type: string; name?: string; uuid?: string }[];
}
const sfdiskJson = (img: string): SfdiskTable => JSON.parse(run('sfdisk', ['-J', img])).partitiontable;
const num = (node: string) => Number(node.match(/(\d+)$/)![1]);
const mtype = (img: string, offset: number, file: string) => run('mtype', ['-i', `${img}@@${offset}`, `::${file}`]);

function e2fsckRegion(img: string, offset: number, size: number): void {
  const part = path.join(dir, `root-${offset}.img`);
  writeFileSync(part, readRange(img, offset, size));
  execFileSync(tool('e2fsck'), ['-fn', part], { stdio: 'pipe' });
}

beforeAll(() => {
  dir = tmpDir('ab-base');
});
afterAll(cleanup);

describe.runIf(HAVE_TOOLS)('A/B layout on a UEFI (GPT) base', () => {
  let fx: Fixture;
  let ab: Awaited<ReturnType<typeof deriveAbBase>>;
  beforeAll(async () => {
    fx = buildGptFixture(path.join(dir, 'uefi'));
    const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
    ab = await deriveAbBase({ base, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: '2026.12.1', cardBytes: 32 * GB, outDir: path.join(dir, 'out-uefi') });
  });

  it("has the ESP, root A (the base's root, byte for byte) and an empty root B, both GPT copies valid", () => {
    const img = ab.base.rawPath;
    expect(run('sfdisk', ['--verify', img])).toContain('No errors detected.');
    execFileSync(tool('sgdisk'), ['-v', img], { stdio: 'pipe' });
    const t = sfdiskJson(img);
    expect(t.label).toBe('gpt');
    expect(t.partitions.map((p) => [num(p.node), p.name, p.type])).toEqual([
      [1, 'edgeforge-esp', GPT_TYPES.esp],
      [2, 'edgeforge-root-a', GPT_TYPES.linuxRootArm64],
      [3, 'edgeforge-root-b', GPT_TYPES.linuxRootArm64],
    ]);
    // the gap after the GPT entries stays free for the CIDATA seed partition
    expect(t.partitions[0].start).toBe(2048);
    const [a, b] = [t.partitions[1], t.partitions[2]];
    // twice the base's 8 MiB root
    expect(a.size).toBe(2 * (fx.rootSize / 512));
    expect(b.size).toBe(a.size);
    expect(sha256(readRange(img, a.start * 512, fx.rootSize))).toBe(sha256(readRange(fx.path, fx.rootOffset, fx.rootSize)));
    e2fsckRegion(img, a.start * 512, fx.rootSize);
    // slot B is holes until the first update writes it
    expect(ab.base.mapped.some((x) => x.offset < (b.start + b.size) * 512 && x.offset + x.length > b.start * 512)).toBe(false);
    expect(ab.info.facts.rootUuids).toEqual([a.uuid!.toLowerCase(), b.uuid!.toLowerCase()]);
  });

  it("writes GRUB's A/B configuration and the environment RAUC edits, in a clean ESP that keeps the base's files", () => {
    const img = ab.base.rawPath;
    const esp = sfdiskJson(img).partitions[0];
    const off = esp.start * 512;
    fsckFat(img, off, esp.size * 512, dir);
    expect(sha256(mcopyOut(img, off, 'EFI/BOOT/BOOTAA64.EFI', dir))).toBe(sha256(fx.fatFiles.get('EFI/BOOT/BOOTAA64.EFI')!));
    const cfg = mtype(img, off, 'EFI/debian/grub.cfg');
    const cfgFile = path.join(dir, 'grub.cfg');
    writeFileSync(cfgFile, cfg);
    execFileSync(tool('grub-script-check'), [cfgFile], { stdio: 'pipe' });
    const [ua, ub] = ab.info.facts.rootUuids;
    expect(cfg).toContain(`linux (\${disk},gpt2)/vmlinuz root=PARTUUID=${ua} rauc.slot=A panic=10 ro rootwait console=tty0 console=ttyAMA0`);
    expect(cfg).toContain(`linux (\${disk},gpt3)/vmlinuz root=PARTUUID=${ub} rauc.slot=B`);
    const envFile = path.join(dir, 'grubenv');
    writeFileSync(envFile, mcopyOut(img, off, 'EFI/debian/grubenv', dir));
    expect(readFileSync(envFile).length).toBe(1024);
    expect(run('grub-editenv', [envFile, 'list']).trim().split('\n')).toEqual(['ORDER=A B', 'A_OK=1', 'A_TRY=0', 'B_OK=0', 'B_TRY=0']);
    // RAUC's GRUB backend marks B primary exactly like this (grub-editenv ... set): the block stays readable
    run('grub-editenv', [envFile, 'set', 'B_OK=1', 'B_TRY=0', 'ORDER=B A']);
    expect(run('grub-editenv', [envFile, 'list'])).toContain('ORDER=B A\n');
    // the two state records, both valid, of the size the device overwrites in place; the current one says slot A
    const records = [0, 1].map((i) => mtype(img, off, `edgeforge/os-state.${i}`));
    expect(records.map((r) => r.length)).toEqual([OS_UPDATE.stateRecordBytes, OS_UPDATE.stateRecordBytes]);
    expect(currentState(records)).toMatchObject({ SEQ: '1', A_VERSION: '2026.12.1', B_VERSION: '' });
    const layout = mtype(img, off, 'edgeforge/os-layout');
    expect(layout).toContain("EF_AB_ROOT_B='/dev/disk/by-partlabel/edgeforge-root-b'");
    expect(layout).toContain("EF_AB_GRUBENV='EFI/debian/grubenv'");
  });

  it('is deterministic, is reused while unchanged, and takes the K3s partition and the seed on top', async () => {
    const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
    const again = await deriveAbBase({ base, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: '2026.12.1', cardBytes: 32 * GB, outDir: path.join(dir, 'out-uefi-2') });
    expect(again.info.sha256).toBe(ab.info.sha256);
    expect(again.reused).toBe(false);
    const reused = await deriveAbBase({ base, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: '2026.12.1', cardBytes: 32 * GB, outDir: path.join(dir, 'out-uefi-2') });
    expect(reused.reused).toBe(true);
    const other = await deriveAbBase({ base, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: '2027.01.0', cardBytes: 32 * GB, outDir: path.join(dir, 'out-uefi-2') });
    expect(other.info.sha256).not.toBe(ab.info.sha256);

    const k3s = path.join(dir, 'k3s-arm64');
    const bytes = pseudo('k3s', 300_000);
    writeFileSync(k3s, bytes);
    const fleetBase = await deriveFleetBase({ base: ab.base, files: [{ name: 'k3s-arm64', path: k3s, sha256: sha256(bytes), bytes: bytes.length }], outDir: path.join(dir, 'out-uefi') });
    const p = await personalize({ base: fleetBase.base, profile: 'uefi-gpt', files: deviceSeed('dev-1'), epoch: EPOCH });
    expect(p.createdPartition).toBe(true);
    const img = path.join(dir, 'device.img');
    writeFileSync(img, readFileSync(fleetBase.base.rawPath));
    // apply the delta's extents to a copy: what materialize does
    const { decodeDelta } = await import('../../scripts/disk/delta.ts');
    const d = decodeDelta(p.delta);
    const fd = readFileSync(img);
    d.extents.forEach((x, i) => Buffer.from(d.data[i]).copy(fd, x.offset));
    writeFileSync(img, fd);
    const t = sfdiskJson(img);
    expect(t.partitions.map((x) => [num(x.node), x.name])).toEqual([
      [1, 'edgeforge-esp'],
      [2, 'edgeforge-root-a'],
      [3, 'edgeforge-root-b'],
      [4, 'edgeforge-k3s'],
      [5, 'CIDATA'],
    ]);
    // CIDATA in the gap before the ESP; the data volume's space after EFK3S is untouched
    expect(t.partitions[4].start).toBeLessThan(2048);
    execFileSync(tool('sgdisk'), ['-v', img], { stdio: 'pipe' });
  });

  it('refuses a base that is not an ESP and one root, and a slot smaller than the root', async () => {
    const fx2 = buildRaspiFixture(path.join(dir, 'not-gpt'));
    const base = await prepareBase({ path: fx2.path, sha256: fx2.sha256 });
    await expect(deriveAbBase({ base, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: 'v1', cardBytes: 32 * GB, outDir: path.join(dir, 'out-bad') })).rejects.toThrow(
      /expects a GPT base/,
    );
    const gptBase = await prepareBase({ path: fx.path, sha256: fx.sha256 });
    await expect(
      deriveAbBase({ base: gptBase, profile: await loadProfile('uefi-gpt'), fleet: 'acme', version: 'v1', slotBytes: 4 * 1048576, cardBytes: 32 * GB, outDir: path.join(dir, 'out-bad') }),
    ).rejects.toThrow(/smaller than the base image's root partition/);
  });
});

describe.runIf(HAVE_TOOLS)('A/B layout on a Raspberry Pi (MBR) base', () => {
  let fx: Fixture;
  let ab: Awaited<ReturnType<typeof deriveAbBase>>;
  const card = 2 * GB;
  beforeAll(async () => {
    fx = buildRaspiFixture(path.join(dir, 'raspi'));
    const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
    ab = await deriveAbBase({ base, profile: await loadProfile('raspi-mbr'), fleet: 'acme', version: '2026.12.1', cardBytes: card, outDir: path.join(dir, 'out-raspi') });
  });

  it('has boot-select, boot A/B as primaries and root A/B and the data volume as logical partitions', () => {
    const img = ab.base.rawPath;
    expect(run('sfdisk', ['--verify', img])).toContain('No errors detected.');
    const t = sfdiskJson(img);
    expect(t.label).toBe('dos');
    expect(Number(t.id)).toBe(piDiskSignature('acme'));
    expect(t.partitions.map((p) => [num(p.node), p.type])).toEqual([
      [1, 'e'],
      [2, 'c'],
      [3, 'c'],
      [4, 'f'],
      [5, '83'],
      [6, '83'],
      [7, '83'],
    ]);
    const byNum = new Map(t.partitions.map((p) => [num(p.node), p]));
    expect(byNum.get(2)!.size * 512).toBe(fx.fatSize);
    expect(byNum.get(3)!.size * 512).toBe(fx.fatSize);
    const rootA = byNum.get(5)!;
    expect(sha256(readRange(img, rootA.start * 512, fx.rootSize))).toBe(sha256(readRange(fx.path, fx.rootOffset, fx.rootSize)));
    e2fsckRegion(img, rootA.start * 512, fx.rootSize);
    // the data volume runs to 97% of the card; its first MiB is written (zeros): blkid finds nothing to refuse
    const data = byNum.get(7)!;
    expect((data.start + data.size) * 512).toBeLessThanOrEqual(card * 0.97);
    expect(data.size * 512).toBeGreaterThan(1024 * 1048576);
    expect(readRange(img, data.start * 512, 1048576).every((x) => x === 0)).toBe(true);
    expect(ab.base.mapped.some((x) => x.offset <= data.start * 512 && x.offset + x.length >= data.start * 512 + 1048576)).toBe(true);
    expect(() => execFileSync(tool('blkid'), ['-p', '-O', String(data.start * 512), img], { stdio: 'pipe' })).toThrow();
  });

  it('boots boot A normally and boot B on a tryboot, and points boot A at root A', () => {
    const img = ab.base.rawPath;
    const t = sfdiskJson(img);
    const sel = t.partitions[0];
    fsckFat(img, sel.start * 512, sel.size * 512, dir);
    expect(run('blkid', ['-p', '-O', String(sel.start * 512), '-o', 'export', img])).toMatch(/^LABEL=EFSHARED$/m);
    // one sector, padded with comment lines of the firmware's config syntax (the device overwrites it in place)
    const auto = mtype(img, sel.start * 512, 'autoboot.txt');
    expect(auto).toBe(fixedSizeText(autobootTxt(2, 3), 512));
    expect(auto.startsWith('[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n#')).toBe(true);
    expect(
      auto
        .split('\n')
        .slice(5)
        .every((l) => l === '' || (/^#+$/.test(l) && l.length < 80)),
    ).toBe(true);
    expect(currentState([0, 1].map((i) => mtype(img, sel.start * 512, `edgeforge/os-state.${i}`)))).toMatchObject({ A_VERSION: '2026.12.1' });
    const bootA = t.partitions[1];
    fsckFat(img, bootA.start * 512, bootA.size * 512, dir);
    const cmdline = mtype(img, bootA.start * 512, 'cmdline.txt');
    expect(cmdline).toBe(`console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 rootfstype=ext4 rootwait fixrtc quiet splash root=PARTUUID=${piPartuuid('acme', 5)} rauc.slot=A panic=10\n`);
    expect(sha256(mcopyOut(img, bootA.start * 512, 'start4.elf', dir))).toBe(sha256(fx.fatFiles.get('start4.elf')!));
    // boot B stays empty (holes) until the first update
    const bootB = t.partitions[2];
    expect(ab.base.mapped.some((x) => x.offset < (bootB.start + bootB.size) * 512 && x.offset + x.length > bootB.start * 512)).toBe(false);
  });

  it('takes the device seed in boot A (system-boot) with the cgroup arguments', async () => {
    const p = await personalize({ base: ab.base, profile: 'raspi-mbr', files: deviceSeed('pi-1'), epoch: EPOCH });
    expect(p.seedPartition).toBe(2);
    expect(p.cmdlineChanged).toBe(true);
  });
});
