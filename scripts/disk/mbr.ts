// MBR partition table (primary entries). Raspberry Pi images use only primaries; extended/logical
// partitions are listed as their container and not followed.
import type { BlockDev } from './block.ts';

export const SECTOR = 512;

export interface MbrPartition {
  /** 1-based, as Linux numbers them (sda1..sda4) */
  number: number;
  type: number;
  bootable: boolean;
  startLba: number;
  sectors: number;
}

export interface Mbr {
  diskSignature: number;
  partitions: MbrPartition[];
  /** true when the only entry is type 0xEE: a GPT disk's protective MBR */
  protective: boolean;
}

export function parseMbr(sector0: Uint8Array): Mbr | null {
  if (sector0.length < SECTOR || sector0[510] !== 0x55 || sector0[511] !== 0xaa) return null;
  const dv = new DataView(sector0.buffer, sector0.byteOffset, SECTOR);
  const partitions: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    const type = sector0[o + 4];
    const sectors = dv.getUint32(o + 12, true);
    if (type === 0 || sectors === 0) continue;
    partitions.push({ number: i + 1, type, bootable: sector0[o] === 0x80, startLba: dv.getUint32(o + 8, true), sectors });
  }
  return {
    diskSignature: dv.getUint32(440, true),
    partitions,
    protective: partitions.some((p) => p.type === 0xee),
  };
}

export async function readMbr(dev: BlockDev): Promise<Mbr | null> {
  return parseMbr(await dev.read(0, SECTOR));
}

export interface NewMbrPartition {
  type: number;
  bootable?: boolean;
  startLba: number;
  sectors: number;
}

function chs(lba: number): number[] {
  const c = Math.floor(lba / (255 * 63));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  return [Math.floor(lba / 63) % 255, ((c >> 2) & 0xc0) | ((lba % 63) + 1), c & 0xff];
}

function putEntry(sector: Buffer, slot: number, type: number, start: number, sectors: number, bootable = false): void {
  const o = 446 + slot * 16;
  sector.fill(0, o, o + 16);
  sector[o] = bootable ? 0x80 : 0;
  sector.set(chs(start), o + 1);
  sector[o + 4] = type;
  sector.set(chs(start + sectors - 1), o + 5);
  sector.writeUInt32LE(start, o + 8);
  sector.writeUInt32LE(sectors, o + 12);
}

/**
 * Writes an MBR with up to three primaries and, when `logical` is not empty, an extended partition (type 0x0f,
 * number 4) holding them as a chain of EBRs: each EBR sits 1 MiB before its logical partition, whose data starts
 * 1 MiB aligned. Logical partitions are numbered 5, 6, ... as Linux numbers them. Sectors of 512 bytes.
 */
export async function writeNewMbr(dev: BlockDev, o: { diskSignature: number; primary: NewMbrPartition[]; logical: NewMbrPartition[] }): Promise<void> {
  const maxPrimary = o.logical.length ? 3 : 4;
  if (o.primary.length > maxPrimary) throw new Error(`an MBR holds ${maxPrimary} primaries besides the extended partition, not ${o.primary.length}`);
  const mbr = Buffer.alloc(SECTOR);
  mbr.writeUInt32LE(o.diskSignature >>> 0, 440);
  o.primary.forEach((p, i) => putEntry(mbr, i, p.type, p.startLba, p.sectors, p.bootable));
  if (o.logical.length) {
    const EBR_GAP = 2048;
    const extStart = o.logical[0].startLba - EBR_GAP;
    const last = o.logical[o.logical.length - 1];
    const extEnd = last.startLba + last.sectors; // exclusive
    if (extStart < Math.max(...o.primary.map((p) => p.startLba + p.sectors))) throw new Error('the first logical partition leaves no room for its EBR after the primaries');
    putEntry(mbr, o.primary.length, 0x0f, extStart, extEnd - extStart);
    for (let i = 0; i < o.logical.length; i++) {
      const l = o.logical[i];
      const ebrLba = l.startLba - EBR_GAP;
      if (i > 0 && ebrLba < o.logical[i - 1].startLba + o.logical[i - 1].sectors) throw new Error(`logical partition ${i + 5} leaves no room for its EBR`);
      const ebr = Buffer.alloc(SECTOR);
      putEntry(ebr, 0, l.type, EBR_GAP, l.sectors);
      const next = o.logical[i + 1];
      if (next) {
        const nextEbr = next.startLba - EBR_GAP;
        putEntry(ebr, 1, 0x05, nextEbr - extStart, next.startLba + next.sectors - nextEbr);
      }
      ebr[510] = 0x55;
      ebr[511] = 0xaa;
      await dev.write(ebrLba * SECTOR, ebr);
    }
  }
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  await dev.write(0, mbr);
}
