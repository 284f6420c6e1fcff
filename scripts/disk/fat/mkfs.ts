// Formats a FAT12/16/32 filesystem onto a BlockDev, the way mkfs.fat lays it out, but deterministically:
// the volume id is passed in, timestamps come from the epoch.
import type { BlockDev } from '../block.ts';
import { ATTR, shortEntry } from './dirent.ts';
import type { FatType } from './layout.ts';
import { fatStamp } from './time.ts';

export interface MkfsOptions {
  type?: FatType; // chosen from the size when omitted
  label: string;
  volumeId: number;
  epoch: number;
  sectorsPerCluster?: number;
  hiddenSectors?: number; // partition start LBA, for BIOS-era readers; 0 for a superfloppy
}

const BPS = 512;

function clusterLimits(type: FatType): [number, number] {
  return type === 12 ? [1, 4084] : type === 16 ? [4085, 65524] : [65525, 0x0ffffff5];
}

interface Geometry {
  type: FatType;
  spc: number;
  reserved: number;
  rootEntries: number;
  fatSectors: number;
  clusters: number;
}

export function chooseGeometry(totalSectors: number, opts: { type?: FatType; sectorsPerCluster?: number }): Geometry {
  const types: FatType[] = opts.type ? [opts.type] : totalSectors <= 32768 ? [12, 16] : totalSectors < 1048576 ? [16, 32, 12] : [32, 16];
  for (const type of types) {
    const reserved = type === 32 ? 32 : 1;
    const rootEntries = type === 32 ? 0 : totalSectors <= 8192 ? 224 : 512;
    const rootSecs = Math.ceil((rootEntries * 32) / BPS);
    const spcs = opts.sectorsPerCluster ? [opts.sectorsPerCluster] : type === 32 ? [8, 1, 2, 4, 16, 32, 64] : [1, 2, 4, 8, 16, 32, 64];
    for (const spc of spcs) {
      let fatSectors = 1;
      let clusters = 0;
      for (let i = 0; i < 20; i++) {
        clusters = Math.floor((totalSectors - reserved - 2 * fatSectors - rootSecs) / spc);
        const next = Math.ceil(((clusters + 2) * type) / 8 / BPS);
        if (next === fatSectors) break;
        fatSectors = next;
      }
      const [lo, hi] = clusterLimits(type);
      if (clusters >= lo && clusters <= hi) return { type, spc, reserved, rootEntries, fatSectors, clusters };
    }
  }
  throw new Error(`cannot lay out a FAT${opts.type ?? ''} filesystem in ${totalSectors} sectors`);
}

export async function mkfsFat(dev: BlockDev, opts: MkfsOptions): Promise<void> {
  const totalSectors = Math.floor(dev.size / BPS);
  const g = chooseGeometry(totalSectors, opts);
  const label = opts.label.toUpperCase().padEnd(11).slice(0, 11);
  const bs = Buffer.alloc(BPS);
  const bootJump = g.type === 32 ? 0x58 : 0x3c;
  bs.set([0xeb, bootJump, 0x90], 0);
  bs.write('EDGEFRG ', 3, 'latin1');
  bs.writeUInt16LE(BPS, 11);
  bs[13] = g.spc;
  bs.writeUInt16LE(g.reserved, 14);
  bs[16] = 2;
  bs.writeUInt16LE(g.rootEntries, 17);
  bs.writeUInt16LE(totalSectors < 65536 && g.type !== 32 ? totalSectors : 0, 19);
  bs[21] = 0xf8;
  bs.writeUInt16LE(g.type === 32 ? 0 : g.fatSectors, 22);
  bs.writeUInt16LE(32, 24); // sectors per track, heads: cosmetic CHS values as mkfs.fat uses
  bs.writeUInt16LE(64, 26);
  bs.writeUInt32LE(opts.hiddenSectors ?? 0, 28);
  bs.writeUInt32LE(totalSectors < 65536 && g.type !== 32 ? 0 : totalSectors, 32);
  const ext = g.type === 32 ? 64 : 36;
  if (g.type === 32) {
    bs.writeUInt32LE(g.fatSectors, 36);
    bs.writeUInt32LE(2, 44); // root directory cluster
    bs.writeUInt16LE(1, 48); // FSInfo sector
    bs.writeUInt16LE(6, 50); // backup boot sector
  }
  bs[ext] = 0x80;
  bs[ext + 2] = 0x29;
  bs.writeUInt32LE(opts.volumeId >>> 0, ext + 3);
  bs.write(label, ext + 7, 'latin1');
  bs.write(g.type === 32 ? 'FAT32   ' : g.type === 16 ? 'FAT16   ' : 'FAT12   ', ext + 18, 'latin1');
  bs.set([0xeb, 0xfe], 2 + bootJump); // boot code: spin, this volume is not bootable
  bs[510] = 0x55;
  bs[511] = 0xaa;

  const rootSecs = Math.ceil((g.rootEntries * 32) / BPS);
  const dataStart = g.reserved + 2 * g.fatSectors + rootSecs;
  // the reserved area, both FATs and the root directory are written explicitly (never left as holes)
  const meta = Buffer.alloc((dataStart + (g.type === 32 ? g.spc : 0)) * BPS);
  meta.set(bs, 0);
  const fat = Buffer.alloc(g.fatSectors * BPS);
  if (g.type === 12) fat.set([0xf8, 0xff, 0xff], 0);
  else if (g.type === 16) fat.set([0xf8, 0xff, 0xff, 0xff], 0);
  else fat.set([0xf8, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0x0f], 0); // cluster 2: root dir
  for (let f = 0; f < 2; f++) meta.set(fat, (g.reserved + f * g.fatSectors) * BPS);
  const labelEntry = shortEntry(label, ATTR.volumeId, 0, 0, 0, fatStamp(opts.epoch));
  meta.set(labelEntry, (g.reserved + 2 * g.fatSectors) * BPS); // root dir: fixed area, or cluster 2 on FAT32
  if (g.type === 32) {
    const fsinfo = Buffer.alloc(BPS);
    fsinfo.writeUInt32LE(0x41615252, 0);
    fsinfo.writeUInt32LE(0x61417272, 484);
    fsinfo.writeUInt32LE(g.clusters - 1, 488);
    fsinfo.writeUInt32LE(3, 492);
    fsinfo.writeUInt32LE(0xaa550000, 508);
    meta.set(fsinfo, BPS);
    const sig2 = Buffer.alloc(BPS);
    sig2.writeUInt32LE(0xaa550000, 508);
    meta.set(sig2, 2 * BPS);
    meta.copy(meta, 6 * BPS, 0, 3 * BPS); // backup boot sector, FSInfo and third sector
  }
  await dev.write(0, meta);
}
