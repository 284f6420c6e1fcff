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
