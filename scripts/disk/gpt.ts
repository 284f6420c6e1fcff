// GPT: read both headers and entry arrays (CRCs checked), and add a partition to both copies.
import type { BlockDev } from './block.ts';
import { crc32 } from './crc32.ts';
import { guidFromString, guidToString } from './guid.ts';
import { SECTOR } from './mbr.ts';

export interface GptEntry {
  /** 1-based slot number = Linux partition number */
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  /** inclusive, as stored */
  lastLba: number;
  attributes: bigint;
  name: string;
}

export interface GptHeader {
  currentLba: number;
  backupLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
  headerSize: number;
}

export interface Gpt {
  primary: GptHeader;
  backup: GptHeader | null;
  entries: GptEntry[];
  /** raw entry array of the primary copy, for rewriting */
  rawEntries: Uint8Array;
}

const SIG = 'EFI PART';

function parseHeader(sec: Uint8Array, where: string): GptHeader {
  const dv = new DataView(sec.buffer, sec.byteOffset, sec.length);
  if (Buffer.from(sec.subarray(0, 8)).toString('latin1') !== SIG) throw new Error(`${where}: no GPT signature`);
  const headerSize = dv.getUint32(12, true);
  if (headerSize < 92 || headerSize > SECTOR) throw new Error(`${where}: bad GPT header size ${headerSize}`);
  const copy = Buffer.from(sec.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  const want = dv.getUint32(16, true);
  if (crc32(copy) !== want) throw new Error(`${where}: GPT header CRC mismatch`);
  return {
    headerSize,
    currentLba: Number(dv.getBigUint64(24, true)),
    backupLba: Number(dv.getBigUint64(32, true)),
    firstUsableLba: Number(dv.getBigUint64(40, true)),
    lastUsableLba: Number(dv.getBigUint64(48, true)),
    diskGuid: guidToString(sec.subarray(56, 72)),
    entriesLba: Number(dv.getBigUint64(72, true)),
    entryCount: dv.getUint32(80, true),
    entrySize: dv.getUint32(84, true),
    entriesCrc: dv.getUint32(88, true),
  };
}

function parseEntries(raw: Uint8Array, h: GptHeader): GptEntry[] {
  const out: GptEntry[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = raw.subarray(i * h.entrySize, i * h.entrySize + 128);
    if (e.subarray(0, 16).every((x) => x === 0)) continue; // unused slot
    const dv = new DataView(e.buffer, e.byteOffset, 128);
    const nameRaw = Buffer.from(e.subarray(56, 128)).toString('utf16le');
    out.push({
      number: i + 1,
      typeGuid: guidToString(e.subarray(0, 16)),
      uniqueGuid: guidToString(e.subarray(16, 32)),
      firstLba: Number(dv.getBigUint64(32, true)),
      lastLba: Number(dv.getBigUint64(40, true)),
      attributes: dv.getBigUint64(48, true),
      name: nameRaw.replace(/\0.*$/s, ''),
    });
  }
  return out;
}

async function readCopy(dev: BlockDev, lba: number, where: string): Promise<{ h: GptHeader; raw: Uint8Array }> {
  const h = parseHeader(await dev.read(lba * SECTOR, SECTOR), where);
  const raw = await dev.read(h.entriesLba * SECTOR, h.entryCount * h.entrySize);
  if (crc32(raw) !== h.entriesCrc) throw new Error(`${where}: GPT partition entry array CRC mismatch`);
  return { h, raw };
}

/** Reads and verifies the primary GPT and its backup. Returns null when sector 1 holds no GPT. */
export async function readGpt(dev: BlockDev): Promise<Gpt | null> {
  const sec1 = await dev.read(SECTOR, SECTOR);
  if (Buffer.from(sec1.subarray(0, 8)).toString('latin1') !== SIG) return null;
  const { h, raw } = await readCopy(dev, 1, 'primary GPT');
  let backup: GptHeader | null = null;
  if ((h.backupLba + 1) * SECTOR <= dev.size) {
    backup = (await readCopy(dev, h.backupLba, 'backup GPT')).h;
    if (backup.entriesCrc !== h.entriesCrc) throw new Error('backup GPT entries differ from the primary');
  }
  return { primary: h, backup, entries: parseEntries(raw, h), rawEntries: raw };
}

function encodeEntry(e: Omit<GptEntry, 'number'>): Uint8Array {
  const b = Buffer.alloc(128);
  b.set(guidFromString(e.typeGuid), 0);
  b.set(guidFromString(e.uniqueGuid), 16);
  b.writeBigUInt64LE(BigInt(e.firstLba), 32);
  b.writeBigUInt64LE(BigInt(e.lastLba), 40);
  b.writeBigUInt64LE(e.attributes, 48);
  const name = Buffer.from(e.name, 'utf16le');
  if (name.length > 72) throw new Error(`GPT partition name too long: ${e.name}`);
  b.set(name, 56);
  return b;
}

async function writeHeader(dev: BlockDev, h: GptHeader, at: number, entriesLba: number, backupLba: number): Promise<void> {
  const old = await dev.read(at * SECTOR, SECTOR);
  const b = Buffer.from(old);
  b.writeBigUInt64LE(BigInt(at), 24);
  b.writeBigUInt64LE(BigInt(backupLba), 32);
  b.writeBigUInt64LE(BigInt(entriesLba), 72);
  b.writeUInt32LE(h.entriesCrc, 88);
  b.writeUInt32LE(0, 16);
  b.writeUInt32LE(crc32(b.subarray(0, h.headerSize)), 16);
  await dev.write(at * SECTOR, b);
}

/**
 * Puts a partition into the first free slot of both GPT copies, with every CRC recomputed.
 * Everything else in the headers (disk GUID, usable range, other entries) is kept as is.
 */
export async function addGptPartition(dev: BlockDev, gpt: Gpt, e: Omit<GptEntry, 'number'>): Promise<GptEntry> {
  const h = gpt.primary;
  if (e.firstLba < h.firstUsableLba || e.lastLba > h.lastUsableLba || e.lastLba < e.firstLba) {
    throw new Error(`partition ${e.firstLba}-${e.lastLba} outside the usable GPT range ${h.firstUsableLba}-${h.lastUsableLba}`);
  }
  for (const o of gpt.entries) {
    if (e.firstLba <= o.lastLba && o.firstLba <= e.lastLba) throw new Error(`new partition overlaps partition ${o.number}`);
  }
  const used = new Set(gpt.entries.map((x) => x.number));
  let number = 1;
  while (used.has(number)) number++;
  if (number > h.entryCount) throw new Error('no free GPT partition slot');
  const raw = Buffer.from(gpt.rawEntries);
  raw.set(encodeEntry(e), (number - 1) * h.entrySize);
  const entriesCrc = crc32(raw);
  const nh = { ...h, entriesCrc };
  await dev.write(h.entriesLba * SECTOR, raw);
  await writeHeader(dev, nh, 1, h.entriesLba, h.backupLba);
  if (gpt.backup) {
    await dev.write(gpt.backup.entriesLba * SECTOR, raw);
    await writeHeader(dev, nh, h.backupLba, gpt.backup.entriesLba, 1);
  }
  const entry = { ...e, number };
  gpt.entries.push(entry);
  gpt.entries.sort((a, b) => a.number - b.number);
  gpt.rawEntries = raw;
  gpt.primary = nh;
  if (gpt.backup) gpt.backup = { ...gpt.backup, entriesCrc };
  return entry;
}

/**
 * Unallocated sector runs inside the usable range before the last partition, in disk order. The run after
 * the last partition is never offered: it stays free for the encrypted data volume.
 */
export function gptGaps(gpt: Gpt): { firstLba: number; lastLba: number }[] {
  const parts = [...gpt.entries].sort((a, b) => a.firstLba - b.firstLba);
  const gaps: { firstLba: number; lastLba: number }[] = [];
  let next = gpt.primary.firstUsableLba;
  for (const p of parts) {
    if (p.firstLba > next) gaps.push({ firstLba: next, lastLba: p.firstLba - 1 });
    next = Math.max(next, p.lastLba + 1);
  }
  return gaps;
}

/**
 * Moves the backup GPT to the end of a disk of `totalSectors` (an image that grew) and extends the usable
 * range up to it. The old backup header and entry array are zeroed, so no stale "EFI PART" is left in the
 * middle of the disk. Both headers are written whole, CRCs recomputed; `gpt` is updated in place.
 */
export async function moveGptBackup(dev: BlockDev, gpt: Gpt, totalSectors: number): Promise<void> {
  const h = gpt.primary;
  if (totalSectors * SECTOR > dev.size) throw new Error(`disk of ${totalSectors} sectors does not fit a device of ${dev.size} bytes`);
  const entriesSectors = Math.ceil((h.entryCount * h.entrySize) / SECTOR);
  const backupLba = totalSectors - 1;
  const backupEntriesLba = backupLba - entriesSectors;
  const lastUsableLba = backupEntriesLba - 1;
  const maxEnd = Math.max(0, ...gpt.entries.map((e) => e.lastLba));
  if (lastUsableLba < maxEnd) throw new Error(`cannot move the backup GPT to sector ${backupLba}: partitions run to sector ${maxEnd}`);
  // the old backup (header + entries) goes, unless it is exactly where the new one will be
  if (gpt.backup && h.backupLba !== backupLba) {
    await dev.write(gpt.backup.entriesLba * SECTOR, new Uint8Array(entriesSectors * SECTOR));
    await dev.write(h.backupLba * SECTOR, new Uint8Array(SECTOR));
  }
  const prim = Buffer.from(await dev.read(SECTOR, SECTOR));
  prim.writeBigUInt64LE(BigInt(backupLba), 32);
  prim.writeBigUInt64LE(BigInt(lastUsableLba), 48);
  prim.writeUInt32LE(0, 16);
  prim.writeUInt32LE(crc32(prim.subarray(0, h.headerSize)), 16);
  const back = Buffer.from(prim);
  back.writeBigUInt64LE(BigInt(backupLba), 24);
  back.writeBigUInt64LE(1n, 32);
  back.writeBigUInt64LE(BigInt(backupEntriesLba), 72);
  back.writeUInt32LE(0, 16);
  back.writeUInt32LE(crc32(back.subarray(0, h.headerSize)), 16);
  const entries = Buffer.alloc(entriesSectors * SECTOR);
  entries.set(gpt.rawEntries);
  await dev.write(backupEntriesLba * SECTOR, entries);
  await dev.write(backupLba * SECTOR, back);
  await dev.write(SECTOR, prim);
  gpt.primary = { ...h, backupLba, lastUsableLba };
  gpt.backup = { ...h, currentLba: backupLba, backupLba: 1, lastUsableLba, entriesLba: backupEntriesLba };
}

/**
 * Writes a new GPT over `dev` (an image of `totalSectors`): a protective MBR, the primary header and entry array
 * at LBA 1-33, the backup ones at the end, 128 entries, CRCs computed. Entries keep their numbers (1-based).
 */
export async function writeNewGpt(dev: BlockDev, o: { diskGuid: string; firstUsableLba: number; totalSectors: number; entries: GptEntry[] }): Promise<Gpt> {
  const entryCount = 128;
  const entrySize = 128;
  const entriesSectors = (entryCount * entrySize) / SECTOR;
  const backupLba = o.totalSectors - 1;
  const backupEntriesLba = backupLba - entriesSectors;
  const lastUsableLba = backupEntriesLba - 1;
  if (o.firstUsableLba < 2 + entriesSectors) throw new Error(`first usable LBA ${o.firstUsableLba} overlaps the entry array`);
  const raw = Buffer.alloc(entryCount * entrySize);
  for (const e of o.entries) {
    if (e.number < 1 || e.number > entryCount) throw new Error(`GPT partition number ${e.number} out of range`);
    if (e.firstLba < o.firstUsableLba || e.lastLba > lastUsableLba || e.lastLba < e.firstLba)
      throw new Error(`partition ${e.number} (${e.firstLba}-${e.lastLba}) outside the usable range ${o.firstUsableLba}-${lastUsableLba}`);
    for (const x of o.entries) if (x !== e && e.firstLba <= x.lastLba && x.firstLba <= e.lastLba) throw new Error(`partitions ${e.number} and ${x.number} overlap`);
    raw.set(encodeEntry(e), (e.number - 1) * entrySize);
  }
  const entriesCrc = crc32(raw);
  const header = (current: number, other: number, entriesLba: number) => {
    const b = Buffer.alloc(SECTOR);
    b.write(SIG, 0, 'latin1');
    b.writeUInt32LE(0x00010000, 8);
    b.writeUInt32LE(92, 12);
    b.writeBigUInt64LE(BigInt(current), 24);
    b.writeBigUInt64LE(BigInt(other), 32);
    b.writeBigUInt64LE(BigInt(o.firstUsableLba), 40);
    b.writeBigUInt64LE(BigInt(lastUsableLba), 48);
    b.set(guidFromString(o.diskGuid), 56);
    b.writeBigUInt64LE(BigInt(entriesLba), 72);
    b.writeUInt32LE(entryCount, 80);
    b.writeUInt32LE(entrySize, 84);
    b.writeUInt32LE(entriesCrc, 88);
    b.writeUInt32LE(crc32(b.subarray(0, 92)), 16);
    return b;
  };
  const pmbr = Buffer.alloc(SECTOR);
  pmbr[446 + 1] = 0x00;
  pmbr[446 + 2] = 0x02;
  pmbr[446 + 4] = 0xee;
  pmbr.set([0xff, 0xff, 0xff], 446 + 5);
  pmbr.writeUInt32LE(1, 446 + 8);
  pmbr.writeUInt32LE(Math.min(o.totalSectors - 1, 0xffffffff), 446 + 12);
  pmbr[510] = 0x55;
  pmbr[511] = 0xaa;
  await dev.write(0, pmbr);
  await dev.write(SECTOR, header(1, backupLba, 2));
  await dev.write(2 * SECTOR, raw);
  await dev.write(backupEntriesLba * SECTOR, raw);
  await dev.write(backupLba * SECTOR, header(backupLba, 1, backupEntriesLba));
  const primary: GptHeader = { headerSize: 92, currentLba: 1, backupLba, firstUsableLba: o.firstUsableLba, lastUsableLba, diskGuid: o.diskGuid, entriesLba: 2, entryCount, entrySize, entriesCrc };
  return { primary, backup: { ...primary, currentLba: backupLba, backupLba: 1, entriesLba: backupEntriesLba }, entries: [...o.entries].sort((a, b) => a.number - b.number), rawEntries: raw };
}
