// The fleet base: the user's base image plus one partition holding fleet-wide payload (the K3s airgap files,
// ~270 MB), derived once per build output and shared by every device. Per-device deltas, `image materialize`
// and `flash` all apply to it, so the big files travel in the base (written once per card, from one file)
// and never in a seed (<= 4 MiB) or a delta (<= 2 MiB).
//
//   input base:  [table][p1 boot/ESP][p2 root]...              (read-only, never modified)
//   fleet base:  [table][p1 boot/ESP][p2 root][pN EFK3S FAT32]  (+ backup GPT at the new end)
//
// The partition goes after the last existing one, 1 MiB aligned; the image file grows as needed. GPT: name
// "edgeforge-k3s", Microsoft basic data type; MBR: a primary of type 0x0c. FAT32 labelled EFK3S either way.
// The free space after it stays free for the encrypted data volume (edv_append_partition starts after it).
//
// Deterministic: the bytes depend only on the input image and the files (GUID and volume id derive from
// their hashes; FAT timestamps are a fixed date, not the build's SOURCE_DATE_EPOCH, so a fleet base is reused
// from build to build while the base and the K3s version stay the same instead of being rewritten — GBs —
// at every commit). Written atomically under OUT/base/, keyed by those hashes, reused when unchanged.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FileDev, SliceDev, type BlockDev, type Extent } from './block.ts';
import { fileStamp, type FileStamp, type PreparedBase } from './base.ts';
import { FatFs } from './fat/fs.ts';
import { mkfsFat } from './fat/mkfs.ts';
import { addGptPartition, moveGptBackup } from './gpt.ts';
import { GPT_TYPES, guidFromSeed, guidToString } from './guid.ts';
import { SECTOR } from './mbr.ts';
import { readPartitionTable } from './partitions.ts';
import { tempPathFor, writeFileAtomic } from '../util/atomic.ts';
import { sha256OfFile, type FileDigest } from '../util/hash.ts';
import { preparedFrom, readSideCar, removeOtherImages, writeDerivedImage } from './derived-image.ts';

export const FLEET_BASE_FORMAT = 'edgeforge-fleet-base/1';
export const AIRGAP_PART_NAME = 'edgeforge-k3s';
export const AIRGAP_FAT_LABEL = 'EFK3S';
/** FAT timestamps of the payload files: 2000-01-01T00:00:00Z (see the header for why not SOURCE_DATE_EPOCH) */
export const FLEET_BASE_EPOCH = 946684800;
const MIB_SECTORS = 2048;

/** a file for the payload partition: its path in the FAT ("name", or "dir/name" for a canary release), where to read it (already verified against its digest by the caller) */
export interface PayloadFile extends FileDigest {
  name: string;
  path: string;
}

export interface FleetBasePartition {
  number: number;
  /** bytes */
  start: number;
  size: number;
  scheme: 'gpt' | 'mbr';
  /** GPT partition name, or '' on MBR */
  name: string;
  label: string;
  /** GPT unique partition GUID, or '' on MBR */
  uuid: string;
}

export interface FleetBaseInfo {
  format: typeof FLEET_BASE_FORMAT;
  key: string;
  /** relative to OUT */
  path: string;
  sha256: string;
  size: number;
  from: { sha256: string; size: number };
  partition: FleetBasePartition;
  files: (FileDigest & { name: string })[];
}

interface SideCar extends FleetBaseInfo {
  stamp: FileStamp;
  mappedExact: boolean;
  mapped: [number, number][];
}

export interface DeriveOptions {
  /** the prepared input base (its raw image is read, never written) */
  base: PreparedBase;
  files: PayloadFile[];
  outDir: string;
  /** directory under outDir (default "base") */
  dir?: string;
}

export interface DerivedFleetBase {
  /** what deltas apply to: inputPath/inputSha256 stay the user's image, raw* is the fleet base */
  base: PreparedBase;
  info: FleetBaseInfo;
  reused: boolean;
}

export function fleetBaseKey(rawSha256: string, files: { name: string; sha256: string }[]): string {
  const h = createHash('sha256').update(`${FLEET_BASE_FORMAT}\n${rawSha256}\n`);
  for (const f of files) h.update(`${f.name}\0${f.sha256}\n`);
  return h.digest('hex');
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Sectors for a FAT32 volume holding `files` (in its root and at most a few directories): 4 KiB clusters once that gives FAT32's minimum of
 * 65525 clusters, else 512-byte clusters (small payloads, tests). Whole MiB.
 */
export function payloadGeometry(files: { name: string; bytes: number }[]): { sectors: number; sectorsPerCluster: number } {
  const dirs = new Set(files.map((f) => f.name.split('/').slice(0, -1).join('/')).filter(Boolean)).size;
  const need = (cs: number) => files.reduce((n, f) => n + Math.ceil(f.bytes / cs), 0) + 1 + dirs + 16; // + root dir + subdirectories + slack
  const MIN = 65525 + 16;
  let spc = 8;
  let clusters = need(4096);
  if (clusters < MIN) {
    spc = 1;
    clusters = Math.max(need(512), MIN);
  }
  const fatSectors = Math.ceil(((clusters + 2) * 4) / SECTOR);
  const sectors = alignUp(32 + 2 * fatSectors + clusters * spc, MIB_SECTORS);
  return { sectors, sectorsPerCluster: spc };
}

function chs(lba: number): number[] {
  const c = Math.floor(lba / (255 * 63));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / 63) % 255;
  const s = (lba % 63) + 1;
  return [h, ((c >> 2) & 0xc0) | s, c & 0xff];
}

async function copyMapped(src: string, dst: FileDev, mapped: Extent[]): Promise<void> {
  const fh = await fs.open(src, 'r');
  try {
    const buf = Buffer.alloc(8 << 20);
    for (const x of mapped) {
      for (let o = 0; o < x.length; o += buf.length) {
        const n = Math.min(buf.length, x.length - o);
        const { bytesRead } = await fh.read(buf, 0, n, x.offset + o);
        await dst.write(x.offset + o, buf.subarray(0, bytesRead));
      }
    }
  } finally {
    await fh.close();
  }
}

/** Adds the payload partition to `disk` (already the grown size); returns where it went. */
async function addPayloadPartition(disk: BlockDev, key: string, files: PayloadFile[]): Promise<FleetBasePartition> {
  const table = await readPartitionTable(disk);
  const geo = payloadGeometry(files);
  const lastEnd = Math.max(MIB_SECTORS, ...table.partitions.map((p) => (p.start + p.size) / SECTOR));
  const start = alignUp(lastEnd, MIB_SECTORS);
  const end = start + geo.sectors; // exclusive
  const total = disk.size / SECTOR;
  let part: FleetBasePartition;
  if (table.scheme === 'gpt') {
    const gpt = table.gpt!;
    if (table.partitions.some((p) => p.name === AIRGAP_PART_NAME)) throw new Error(`the base image already has a partition named ${AIRGAP_PART_NAME}`);
    await moveGptBackup(disk, gpt, total);
    const uuid = guidToString(guidFromSeed(`${key}:partition`));
    const e = await addGptPartition(disk, gpt, { typeGuid: GPT_TYPES.basicData, uniqueGuid: uuid, firstLba: start, lastLba: end - 1, attributes: 0n, name: AIRGAP_PART_NAME });
    // the protective MBR spans the whole (grown) disk
    const mbr = Buffer.from(await disk.read(0, SECTOR));
    for (let i = 0; i < 4; i++) {
      const o = 446 + i * 16;
      if (mbr[o + 4] === 0xee) mbr.writeUInt32LE(Math.min(total - 1, 0xffffffff), o + 12);
    }
    await disk.write(0, mbr);
    part = { number: e.number, start: start * SECTOR, size: geo.sectors * SECTOR, scheme: 'gpt', name: AIRGAP_PART_NAME, label: AIRGAP_FAT_LABEL, uuid };
  } else {
    if (end > 0xffffffff) throw new Error('the base image is too large for an MBR partition after its last one');
    const mbr = Buffer.from(await disk.read(0, SECTOR));
    let slot = -1;
    for (let i = 0; i < 4 && slot < 0; i++) if (mbr[446 + i * 16 + 4] === 0 || mbr.readUInt32LE(446 + i * 16 + 12) === 0) slot = i;
    if (slot < 0) throw new Error('the base image has no free primary MBR slot for the K3s airgap partition (4 primaries in use)');
    const o = 446 + slot * 16;
    mbr.fill(0, o, o + 16);
    mbr.set(chs(start), o + 1);
    mbr[o + 4] = 0x0c; // FAT32 LBA
    mbr.set(chs(end - 1), o + 5);
    mbr.writeUInt32LE(start, o + 8);
    mbr.writeUInt32LE(geo.sectors, o + 12);
    await disk.write(0, mbr);
    part = { number: slot + 1, start: start * SECTOR, size: geo.sectors * SECTOR, scheme: 'mbr', name: '', label: AIRGAP_FAT_LABEL, uuid: '' };
  }
  const dev = new SliceDev(disk, part.start, part.size);
  const volumeId = createHash('sha256').update(`${key}:volume`).digest().readUInt32LE(0);
  await mkfsFat(dev, { type: 32, sectorsPerCluster: geo.sectorsPerCluster, label: AIRGAP_FAT_LABEL, volumeId, epoch: FLEET_BASE_EPOCH, hiddenSectors: start });
  const fat = await FatFs.open(dev, { epoch: FLEET_BASE_EPOCH });
  for (const f of files) {
    const fh = await fs.open(f.path, 'r');
    try {
      const st = await fh.stat();
      if (st.size !== f.bytes) throw new Error(`${f.path} is ${st.size} bytes, expected ${f.bytes} (changed since it was verified)`);
      await fat.writeFileFrom(f.name, f.bytes, async (off, len) => {
        const b = Buffer.alloc(len);
        let done = 0;
        while (done < len) {
          const { bytesRead } = await fh.read(b, done, len - done, off + done);
          if (bytesRead === 0) throw new Error(`${f.path}: ended early at ${off + done}`);
          done += bytesRead;
        }
        return b;
      });
    } finally {
      await fh.close();
    }
  }
  await fat.flush();
  return part;
}

/** The derived image's size: the input's, or up to the new partition's end (+ backup GPT), whole MiB. */
function grownSize(base: PreparedBase, lastEndSectors: number, files: PayloadFile[], gpt: boolean): number {
  const start = alignUp(Math.max(MIB_SECTORS, lastEndSectors), MIB_SECTORS);
  const end = start + payloadGeometry(files).sectors + (gpt ? 33 : 0);
  return Math.max(base.size, alignUp(end, MIB_SECTORS) * SECTOR);
}

/**
 * Derives (or reuses) OUT/<dir>/fleet-<key>.img from `base` + `files`. Other fleet-*.img files in that
 * directory (an earlier base or K3s version) are removed once the new one is in place: each is GBs.
 */
export async function deriveFleetBase(o: DeriveOptions): Promise<DerivedFleetBase> {
  const dirRel = o.dir ?? 'base';
  const dir = path.join(o.outDir, dirRel);
  const key = fleetBaseKey(o.base.rawSha256, o.files);
  const name = `fleet-${key.slice(0, 16)}`;
  const imgPath = path.join(dir, `${name}.img`);
  const carPath = path.join(dir, `${name}.json`);
  await fs.mkdir(dir, { recursive: true });
  let car = await readSideCar<SideCar>(carPath, FLEET_BASE_FORMAT, key, imgPath);
  const reused = !!car;
  if (!car) {
    let part: FleetBasePartition | undefined;
    const w = await writeDerivedImage(imgPath, o.base.blockSize, async (fh) => {
      // the table decides the scheme and where the partition goes: read it from the input first
      const inFh = await fs.open(o.base.rawPath, 'r');
      let size: number;
      try {
        const t = await readPartitionTable(new FileDev(inFh, o.base.size, true));
        const lastEnd = Math.max(0, ...t.partitions.map((p) => (p.start + p.size) / SECTOR));
        size = grownSize(o.base, lastEnd, o.files, t.scheme === 'gpt');
      } finally {
        await inFh.close();
      }
      await fh.truncate(size);
      const disk = new FileDev(fh, size, false);
      await copyMapped(o.base.rawPath, disk, o.base.mapped);
      part = await addPayloadPartition(disk, key, o.files);
    });
    car = {
      format: FLEET_BASE_FORMAT,
      key,
      path: `${dirRel}/${name}.img`,
      sha256: w.sha256,
      size: w.size,
      from: { sha256: o.base.rawSha256, size: o.base.size },
      partition: part!,
      files: o.files.map((f) => ({ name: f.name, sha256: f.sha256, bytes: f.bytes })),
      stamp: w.stamp,
      mappedExact: w.mappedExact,
      mapped: w.mapped,
    };
    await writeFileAtomic(carPath, JSON.stringify(car, null, 2) + '\n');
  }
  await removeOtherImages(dir, 'fleet', name);
  const { stamp: _s, mappedExact: _e, mapped: _m, ...info } = car;
  return { base: preparedFrom(o.base, imgPath, car), info, reused };
}

/**
 * Brings the fleet base a shard derived (`fromOut/rel`, with its side-car) into `toOut`, for `manifest merge`:
 * a hard link where both are on one filesystem (a fleet base is never written in place, only replaced by
 * rename), else a copy of its mapped ranges only (it is GBs, mostly holes). The result must hash to `sha256`,
 * the value the shard's signed manifest carries; a link to a source its side-car still vouches for (same
 * file, unchanged since it was hashed) is not read again. Reused when `toOut` already holds it unchanged.
 */
export async function copyFleetBase(fromOut: string, toOut: string, rel: string, sha256: string): Promise<'reused' | 'linked' | 'copied'> {
  const src = path.join(fromOut, rel);
  const dst = path.join(toOut, rel);
  const carRel = rel.replace(/\.img$/, '.json');
  const car = JSON.parse(await fs.readFile(path.join(fromOut, carRel), 'utf8')) as SideCar;
  if (car.sha256 !== sha256) throw new Error(`${path.join(fromOut, carRel)}: records sha256 ${car.sha256}, the manifest ${sha256}`);
  if (await readSideCar<SideCar>(path.join(toOut, carRel), FLEET_BASE_FORMAT, car.key, dst)) return 'reused';
  const vouched = !!(await readSideCar<SideCar>(path.join(fromOut, carRel), FLEET_BASE_FORMAT, car.key, src));
  await fs.mkdir(path.dirname(dst), { recursive: true });
  const tmp = tempPathFor(dst);
  let how: 'linked' | 'copied' = 'linked';
  try {
    try {
      await fs.link(src, tmp);
    } catch {
      how = 'copied';
      const fh = await fs.open(tmp, 'wx+', 0o644);
      try {
        await fh.truncate(car.size);
        await copyMapped(
          src,
          new FileDev(fh, car.size, false),
          car.mapped.map(([offset, length]) => ({ offset, length })),
        );
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    if (how === 'copied' || !vouched) {
      const hashed = await sha256OfFile(tmp);
      if (hashed.sha256 !== sha256) throw new Error(`${src}: sha256 ${hashed.sha256}, the manifest says ${sha256}`);
    }
    await fs.rename(tmp, dst);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await writeFileAtomic(path.join(toOut, carRel), JSON.stringify({ ...car, stamp: await fileStamp(dst) }, null, 2) + '\n');
  return how;
}
