// The A/B base (inventory os:, docs/os-updates.md): the user's base image rearranged into two root slots (and,
// on a Raspberry Pi, two boot partitions), with the boot loader set up to choose between them. Derived once per
// build output, like the fleet base, and everything downstream (the K3s partition, deltas, flash) applies to it.
//
//   uefi-gpt:  [GPT][p1 ESP + grub.cfg + grubenv][p2 root A = the base's root][p3 root B, empty]
//   raspi-mbr: [MBR][p1 EFSHARED: autoboot.txt][p2 boot A = the base's boot][p3 boot B, empty]
//              [p4 extended: p5 root A = the base's root, p6 root B, empty, p7 data volume]
//
// Slot A holds the base (the release `version`); slot B stays empty (holes) until the first update. The
// partitions both slots share carry `edgeforge/os-layout` (the slot devices) and `edgeforge/os-state.0`/`.1` (which
// slot holds which release) for the device programs. Deterministic: GUIDs and volume ids derive from the key,
// FAT timestamps are a fixed date (not SOURCE_DATE_EPOCH: the image is reused from build to build).
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FileDev, SliceDev, type BlockDev } from './block.ts';
import type { FileStamp, PreparedBase } from './base.ts';
import { FatFs } from './fat/fs.ts';
import { mkfsFat } from './fat/mkfs.ts';
import { writeNewGpt, type GptEntry } from './gpt.ts';
import { GPT_TYPES, guidFromSeed, guidToString } from './guid.ts';
import { SECTOR, writeNewMbr } from './mbr.ts';
import { readPartitionTable, type Partition } from './partitions.ts';
import type { Profile } from './profiles.ts';
import { FLEET_BASE_EPOCH } from './fleet-base.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { BaseLayoutError } from '../util/errors.ts';
import { preparedFrom, readSideCar, removeOtherImages, writeDerivedImage } from './derived-image.ts';
import { OS_UPDATE } from '../device/layout.ts';
import { autobootTxt, grubConfig, grubEnvBlock, initialGrubEnv, slotCmdline } from '../render/os/boot.ts';
import { fixedSizeText, initialStateRecords, layoutFile, PI_PARTS, piDiskSignature, piPartuuid, UEFI_PARTS, type LayoutFacts } from '../render/os/slots.ts';
import type { OsLayout } from '../inventory/schema.ts';

// 2: the OS state as two fixed-size records, autoboot.txt padded to a sector (overwritten in place on the device)
export const AB_BASE_FORMAT = 'edgeforge-ab-base/2';
const MIB = 2048; // sectors
const SELECT_MIB = 8;
const FAT_TYPES = new Set(['01', '04', '06', '0b', '0c', '0e']);

export interface AbPartition {
  role: 'esp' | 'select' | 'boot-a' | 'boot-b' | 'root-a' | 'root-b' | 'data';
  number: number;
  /** bytes */
  start: number;
  size: number;
  /** GPT partition name, or the MBR PARTUUID */
  name: string;
}

export interface AbBaseInfo {
  format: typeof AB_BASE_FORMAT;
  key: string;
  /** relative to OUT */
  path: string;
  sha256: string;
  size: number;
  layout: OsLayout;
  /** the OS release slot A holds */
  version: string;
  from: { sha256: string; size: number };
  partitions: AbPartition[];
  facts: LayoutFacts;
}

interface SideCar extends AbBaseInfo {
  stamp: FileStamp;
  mappedExact: boolean;
  mapped: [number, number][];
}

export interface AbOptions {
  base: PreparedBase;
  profile: Profile;
  fleet: string;
  version: string;
  /** bytes of each root slot; default: twice the base's root, at most a quarter of the card, never less than the root */
  slotBytes?: number;
  /** the card (the inventory's storage.sizeGB): the default slot size, and the Raspberry Pi's data partition */
  cardBytes: number;
  outDir: string;
  /** directory under outDir (default "base") */
  dir?: string;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const sectorsOf = (p: Partition) => p.size / SECTOR;

interface Plan {
  sectors: number;
  copies: { from: Partition; toLba: number }[];
  /** writes the table and the boot files; `disk` holds the copies already */
  finish: (disk: BlockDev) => Promise<{ partitions: AbPartition[]; facts: LayoutFacts }>;
}

function slotSectors(root: Partition, o: AbOptions): number {
  const rootS = sectorsOf(root);
  if (o.slotBytes !== undefined) {
    const s = alignUp(Math.floor(o.slotBytes / SECTOR), MIB);
    if (s < rootS) throw new BaseLayoutError(`os.slotMiB ${o.slotBytes / 1048576} is smaller than the base image's root partition (${Math.ceil(root.size / 1048576)} MiB)`);
    return s;
  }
  const quarter = Math.floor(o.cardBytes / SECTOR / 4);
  return alignUp(Math.max(rootS, Math.min(2 * rootS, quarter)), MIB);
}

async function fatAt(disk: BlockDev, start: number, size: number): Promise<FatFs> {
  return FatFs.open(new SliceDev(disk, start, size), { epoch: FLEET_BASE_EPOCH });
}

async function writeWithDirs(fat: FatFs, file: string, bytes: Uint8Array): Promise<void> {
  const parts = file.split('/');
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (!(await fat.stat(dir))) await fat.mkdir(dir);
  }
  await fat.writeFile(file, bytes);
}

async function writeShared(fat: FatFs, facts: LayoutFacts, version: string): Promise<void> {
  await writeWithDirs(fat, OS_UPDATE.layoutRel, Buffer.from(layoutFile(facts)));
  for (const r of initialStateRecords(version)) await writeWithDirs(fat, r.rel, Buffer.from(r.text));
}

/**
 * The two partitions of a base the A/B layouts are made from (and bundles carry): UEFI, its ESP and its Linux
 * root; Raspberry Pi, its FAT boot partition and its Linux root. A base with anything else is refused.
 */
export function basePartitions(parts: Partition[], layout: OsLayout): { boot: Partition; root: Partition } {
  if (layout === 'uefi-gpt') {
    const esp = parts.filter((p) => p.type === GPT_TYPES.esp);
    const roots = parts.filter((p) => p.type === GPT_TYPES.linuxRootArm64 || p.type === GPT_TYPES.linux);
    if (esp.length !== 1 || roots.length !== 1 || parts.length !== 2) {
      throw new BaseLayoutError(`the A/B layout needs a base with exactly an ESP and one Linux root partition; this one has ${parts.map((p) => `${p.number}:${p.name || p.type}`).join(', ')}`);
    }
    return { boot: esp[0], root: roots[0] };
  }
  const boot = parts.filter((p) => FAT_TYPES.has(p.type));
  const roots = parts.filter((p) => p.type === '83');
  if (boot.length !== 1 || roots.length !== 1 || parts.length !== 2) {
    throw new BaseLayoutError(
      `the Raspberry Pi A/B layout needs a base with exactly a FAT boot partition and one Linux root partition; this one has ${parts.map((p) => `${p.number}:0x${p.type}`).join(', ')}`,
    );
  }
  return { boot: boot[0], root: roots[0] };
}

function planUefi(parts: Partition[], guids: Map<number, string>, key: string, o: AbOptions): Plan {
  const ab = o.profile.ab;
  if (ab?.bootloader !== 'grub') throw new BaseLayoutError(`profile ${o.profile.name} has no GRUB A/B settings (ab.bootloader: grub)`);
  const { boot: e, root: r } = basePartitions(parts, 'uefi-gpt');
  const slot = slotSectors(r, o);
  const espLba = MIB;
  const aLba = alignUp(espLba + sectorsOf(e), MIB);
  const bLba = aLba + slot;
  const sectors = alignUp(bLba + slot + 33, MIB);
  const uuid = (role: string) => guidToString(guidFromSeed(`${key}:${role}`));
  // the ESP and slot A keep the base's partition GUIDs: its fstab (PARTUUID=) still finds them
  const [uA, uB] = [guids.get(r.number) ?? uuid('root-a'), uuid('root-b')];
  return {
    sectors,
    copies: [
      { from: e, toLba: espLba },
      { from: r, toLba: aLba },
    ],
    finish: async (disk) => {
      const entry = (number: number, typeGuid: string, uniqueGuid: string, first: number, count: number, name: string): GptEntry => ({
        number,
        typeGuid,
        uniqueGuid,
        firstLba: first,
        lastLba: first + count - 1,
        attributes: 0n,
        name,
      });
      await writeNewGpt(disk, {
        diskGuid: uuid('disk'),
        firstUsableLba: 34,
        totalSectors: sectors,
        entries: [
          entry(UEFI_PARTS.esp, GPT_TYPES.esp, guids.get(e.number) ?? uuid('esp'), espLba, sectorsOf(e), OS_UPDATE.sharedGptName),
          entry(UEFI_PARTS.rootA, r.type, uA, aLba, slot, OS_UPDATE.gptRootNames[0]),
          entry(UEFI_PARTS.rootB, r.type, uB, bLba, slot, OS_UPDATE.gptRootNames[1]),
        ],
      });
      const fat = await fatAt(disk, espLba * SECTOR, e.size);
      const efi = ['EFI/BOOT/BOOTAA64.EFI', 'EFI/BOOT/bootaa64.efi'];
      let hasLoader = false;
      for (const f of efi) if (await fat.stat(f)) hasLoader = true;
      if (!hasLoader) throw new BaseLayoutError(`the base image's ESP has no EFI/BOOT/BOOTAA64.EFI: the A/B layout needs the base's GRUB there (it reads ${ab.grubConfig})`);
      const cfgDir = path.posix.dirname(ab.grubConfig);
      const grubenv = `${cfgDir}/grubenv`;
      await writeWithDirs(
        fat,
        ab.grubConfig,
        Buffer.from(
          grubConfig({
            slots: [
              { name: 'A', partition: UEFI_PARTS.rootA, partuuid: uA },
              { name: 'B', partition: UEFI_PARTS.rootB, partuuid: uB },
            ],
            kernel: ab.kernel,
            initrd: ab.initrd,
            args: ab.kernelArgs,
          }),
        ),
      );
      await writeWithDirs(fat, grubenv, grubEnvBlock(initialGrubEnv()));
      const facts: LayoutFacts = {
        layout: 'uefi-gpt',
        roots: [`/dev/disk/by-partlabel/${OS_UPDATE.gptRootNames[0]}`, `/dev/disk/by-partlabel/${OS_UPDATE.gptRootNames[1]}`],
        rootUuids: [uA.toLowerCase(), uB.toLowerCase()],
        grubenv,
      };
      await writeShared(fat, facts, o.version);
      await fat.flush();
      return {
        facts,
        partitions: [
          { role: 'esp', number: UEFI_PARTS.esp, start: espLba * SECTOR, size: e.size, name: OS_UPDATE.sharedGptName },
          { role: 'root-a', number: UEFI_PARTS.rootA, start: aLba * SECTOR, size: slot * SECTOR, name: OS_UPDATE.gptRootNames[0] },
          { role: 'root-b', number: UEFI_PARTS.rootB, start: bLba * SECTOR, size: slot * SECTOR, name: OS_UPDATE.gptRootNames[1] },
        ],
      };
    },
  };
}

function planPi(parts: Partition[], o: AbOptions): Plan {
  const ab = o.profile.ab;
  if (ab?.bootloader !== 'tryboot') throw new BaseLayoutError(`profile ${o.profile.name} has no Raspberry Pi A/B settings (ab.bootloader: tryboot)`);
  const { boot: b, root: r } = basePartitions(parts, 'raspi-mbr');
  const slot = slotSectors(r, o);
  const selLba = MIB;
  const bootS = sectorsOf(b);
  const aBoot = selLba + SELECT_MIB * MIB;
  const bBoot = alignUp(aBoot + bootS, MIB);
  // each logical partition sits 1 MiB after its EBR
  const aRoot = alignUp(bBoot + bootS, MIB) + MIB;
  const bRoot = aRoot + slot + MIB;
  const dataLba = bRoot + slot + MIB;
  const end = Math.floor((o.cardBytes * 0.97) / SECTOR / MIB) * MIB;
  if (end - dataLba < 1024 * MIB)
    throw new BaseLayoutError(
      `the ${Math.round(o.cardBytes / 1e9)} GB card leaves ${Math.max(0, Math.floor((end - dataLba) / MIB))} MiB for the data volume after two root slots of ${slot / MIB} MiB (need 1024): use a smaller os.slotMiB or a larger card`,
    );
  const uuid = (n: number) => piPartuuid(o.fleet, n);
  return {
    sectors: end,
    copies: [
      { from: b, toLba: aBoot },
      { from: r, toLba: aRoot },
    ],
    finish: async (disk) => {
      await writeNewMbr(disk, {
        diskSignature: piDiskSignature(o.fleet),
        primary: [
          { type: 0x0e, startLba: selLba, sectors: SELECT_MIB * MIB },
          { type: parseInt(b.type, 16), startLba: aBoot, sectors: bootS, bootable: true },
          { type: parseInt(b.type, 16), startLba: bBoot, sectors: bootS },
        ],
        logical: [
          { type: 0x83, startLba: aRoot, sectors: slot },
          { type: 0x83, startLba: bRoot, sectors: slot },
          { type: 0x83, startLba: dataLba, sectors: end - dataLba },
        ],
      });
      // the data volume's first MiB written as zeros: a card's old bytes there would look like someone's
      // filesystem, which the first-boot program refuses to format over
      await disk.write(dataLba * SECTOR, new Uint8Array(MIB * SECTOR));
      const sel = new SliceDev(disk, selLba * SECTOR, SELECT_MIB * MIB * SECTOR);
      const volumeId = createHash('sha256').update(`${o.fleet}:select`).digest().readUInt32LE(0);
      await mkfsFat(sel, { type: 16, label: OS_UPDATE.sharedFatLabel, volumeId, epoch: FLEET_BASE_EPOCH, hiddenSectors: selLba });
      const selFat = await FatFs.open(sel, { epoch: FLEET_BASE_EPOCH });
      await selFat.writeFile('autoboot.txt', Buffer.from(fixedSizeText(autobootTxt(PI_PARTS.bootA, PI_PARTS.bootB), OS_UPDATE.autobootBytes)));
      const dev = (n: number) => `/dev/disk/by-partuuid/${uuid(n)}`;
      const facts: LayoutFacts = {
        layout: 'raspi-mbr',
        roots: [dev(PI_PARTS.rootA), dev(PI_PARTS.rootB)],
        rootUuids: [uuid(PI_PARTS.rootA), uuid(PI_PARTS.rootB)],
        boots: [dev(PI_PARTS.bootA), dev(PI_PARTS.bootB)],
        bootParts: [PI_PARTS.bootA, PI_PARTS.bootB],
      };
      await writeShared(selFat, facts, o.version);
      await selFat.flush();
      const bootFat = await fatAt(disk, aBoot * SECTOR, b.size);
      if (!(await bootFat.stat(ab.cmdline))) throw new BaseLayoutError(`the base image's boot partition has no ${ab.cmdline}`);
      const line = Buffer.from(await bootFat.readFile(ab.cmdline))
        .toString('utf8')
        .split('\n')[0];
      await bootFat.writeFile(ab.cmdline, Buffer.from(slotCmdline(line, `PARTUUID=${uuid(PI_PARTS.rootA)}`, 'A')));
      await bootFat.flush();
      const at = (role: AbPartition['role'], number: number, lba: number, count: number): AbPartition => ({ role, number, start: lba * SECTOR, size: count * SECTOR, name: uuid(number) });
      return {
        facts,
        partitions: [
          at('select', PI_PARTS.select, selLba, SELECT_MIB * MIB),
          at('boot-a', PI_PARTS.bootA, aBoot, bootS),
          at('boot-b', PI_PARTS.bootB, bBoot, bootS),
          at('root-a', PI_PARTS.rootA, aRoot, slot),
          at('root-b', PI_PARTS.rootB, bRoot, slot),
          at('data', PI_PARTS.data, dataLba, end - dataLba),
        ],
      };
    },
  };
}

/** The mapped ranges of `base` inside partition `p`, copied to `toLba` on `dst`. */
export async function copyPartition(src: string, base: PreparedBase, p: Partition, toLba: number, dst: FileDev): Promise<void> {
  const fh = await fs.open(src, 'r');
  try {
    const buf = Buffer.alloc(8 << 20);
    const delta = toLba * SECTOR - p.start;
    for (const x of base.mapped) {
      const from = Math.max(x.offset, p.start);
      const to = Math.min(x.offset + x.length, p.start + p.size);
      for (let o = from; o < to; o += buf.length) {
        const n = Math.min(buf.length, to - o);
        const { bytesRead } = await fh.read(buf, 0, n, o);
        await dst.write(o + delta, buf.subarray(0, bytesRead));
      }
    }
  } finally {
    await fh.close();
  }
}

export function abBaseKey(base: PreparedBase, o: Pick<AbOptions, 'profile' | 'fleet' | 'version' | 'slotBytes' | 'cardBytes'>): string {
  const layoutInputs = { ab: o.profile.ab, table: o.profile.partitionTable, fleet: o.fleet, version: o.version, slot: o.slotBytes ?? null, card: o.cardBytes };
  return createHash('sha256')
    .update(`${AB_BASE_FORMAT}\n${base.rawSha256}\n${JSON.stringify(layoutInputs)}\n`)
    .digest('hex');
}

export interface DerivedAbBase {
  /** what the next stage applies to: inputPath/inputSha256 stay the user's image, raw* is the A/B base */
  base: PreparedBase;
  info: AbBaseInfo;
  reused: boolean;
}

/** Derives (or reuses) OUT/<dir>/ab-<key>.img; older ab-*.img of that directory go once the new one is in place. */
export async function deriveAbBase(o: AbOptions): Promise<DerivedAbBase> {
  const dirRel = o.dir ?? 'base';
  const dir = path.join(o.outDir, dirRel);
  const key = abBaseKey(o.base, o);
  const name = `ab-${key.slice(0, 16)}`;
  const imgPath = path.join(dir, `${name}.img`);
  const carPath = path.join(dir, `${name}.json`);
  await fs.mkdir(dir, { recursive: true });
  let car = await readSideCar<SideCar>(carPath, AB_BASE_FORMAT, key, imgPath);
  const reused = !!car;
  if (!car) {
    const layout: OsLayout = o.profile.partitionTable === 'gpt' ? 'uefi-gpt' : 'raspi-mbr';
    const inFh = await fs.open(o.base.rawPath, 'r');
    let plan: Plan;
    try {
      const t = await readPartitionTable(new FileDev(inFh, o.base.size, true));
      if (t.scheme !== o.profile.partitionTable)
        throw new BaseLayoutError(`profile ${o.profile.name} expects a ${o.profile.partitionTable.toUpperCase()} base, this one has ${t.scheme.toUpperCase()}`);
      const guids = new Map((t.gpt?.entries ?? []).map((x) => [x.number, x.uniqueGuid]));
      plan = layout === 'uefi-gpt' ? planUefi(t.partitions, guids, key, o) : planPi(t.partitions, o);
    } finally {
      await inFh.close();
    }
    let done: { partitions: AbPartition[]; facts: LayoutFacts } | undefined;
    const w = await writeDerivedImage(imgPath, o.base.blockSize, async (fh) => {
      await fh.truncate(plan.sectors * SECTOR);
      const disk = new FileDev(fh, plan.sectors * SECTOR, false);
      for (const c of plan.copies) await copyPartition(o.base.rawPath, o.base, c.from, c.toLba, disk);
      done = await plan.finish(disk);
    });
    car = {
      format: AB_BASE_FORMAT,
      key,
      path: `${dirRel}/${name}.img`,
      sha256: w.sha256,
      size: w.size,
      layout,
      version: o.version,
      from: { sha256: o.base.rawSha256, size: o.base.size },
      partitions: done!.partitions,
      facts: done!.facts,
      stamp: w.stamp,
      mappedExact: w.mappedExact,
      mapped: w.mapped,
    };
    await writeFileAtomic(carPath, JSON.stringify(car, null, 2) + '\n');
  }
  await removeOtherImages(dir, 'ab', name);
  const { stamp: _s, mappedExact: _e, mapped: _m, ...info } = car;
  return {
    base: preparedFrom(o.base, imgPath, car),
    info,
    reused,
  };
}
