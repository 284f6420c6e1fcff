// One view of a disk's partitions, whichever table it has.
import type { BlockDev } from './block.ts';
import { readGpt, type Gpt } from './gpt.ts';
import { readMbr, SECTOR } from './mbr.ts';

export interface Partition {
  number: number;
  start: number; // bytes
  size: number; // bytes
  /** MBR type as two hex digits, or the GPT type GUID */
  type: string;
  name: string; // GPT partition name ('' on MBR)
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt';
  partitions: Partition[];
  gpt: Gpt | null;
}

export async function readPartitionTable(dev: BlockDev): Promise<PartitionTable> {
  const mbr = await readMbr(dev);
  const gpt = await readGpt(dev);
  if (gpt) {
    return {
      scheme: 'gpt',
      gpt,
      partitions: gpt.entries.map((e) => ({
        number: e.number,
        start: e.firstLba * SECTOR,
        size: (e.lastLba - e.firstLba + 1) * SECTOR,
        type: e.typeGuid,
        name: e.name,
      })),
    };
  }
  if (!mbr) throw new Error('no partition table: neither an MBR nor a GPT was found');
  if (mbr.protective) throw new Error('protective MBR but no valid GPT');
  return {
    scheme: 'mbr',
    gpt: null,
    partitions: mbr.partitions.map((p) => ({
      number: p.number,
      start: p.startLba * SECTOR,
      size: p.sectors * SECTOR,
      type: p.type.toString(16).padStart(2, '0'),
      name: '',
    })),
  };
}
