// One device's disk: the base seen through a copy-on-write overlay, the seed written in as the profile says,
// and the changed blocks returned as a delta. Reads the base, never writes it.
import { promises as fs } from 'node:fs';
import { FileDev, OverlayDev, SliceDev, type BlockDev, type Extent } from './block.ts';
import { prepareBase, type PreparedBase } from './base.ts';
import { appendCmdlineArgs } from './cmdline.ts';
import { encodeDelta } from './delta.ts';
import { isUnmapped, totalLength } from './extents.ts';
import { FatFs } from './fat/fs.ts';
import { FatFullError } from './fat/table.ts';
import { parseBootSector } from './fat/layout.ts';
import { mkfsFat } from './fat/mkfs.ts';
import { addGptPartition, gptGaps, type Gpt } from './gpt.ts';
import { GPT_TYPES, guidFromSeed, guidToString } from './guid.ts';
import { SECTOR } from './mbr.ts';
import { readPartitionTable, type Partition, type PartitionTable } from './partitions.ts';
import { loadProfile, type Profile } from './profiles.ts';
import { seedVolumeId, sortedSeedFiles, type SeedFile } from './seed-image.ts';
import { BaseLayoutError } from '../util/errors.ts';

export const MAX_DELTA_BYTES = 2 * 1024 * 1024;

export interface PersonalizeOptions {
  /** the base: an already prepared one, or a path + sha256 pin (prepared and memoized here) */
  base?: PreparedBase;
  basePath?: string;
  baseSha256?: string;
  cacheDir?: string;
  profile: Profile | string;
  files: SeedFile[];
  epoch: number;
  maxDeltaBytes?: number;
}

export interface PersonalizeResult {
  /** the encoded delta file (artifact kind disk-delta) */
  delta: Uint8Array;
  extents: Extent[];
  changedBytes: number;
  base: PreparedBase;
  /** the partition that holds the seed, and what was done in it */
  seedPartition: number;
  createdPartition: boolean;
  written: string[];
  removed: string[];
  cmdlineChanged: boolean;
}

async function fatLabel(dev: BlockDev, epoch: number): Promise<string | null> {
  try {
    parseBootSector(await dev.read(0, 512));
    const fs = await FatFs.open(dev, { epoch });
    return (await fs.label()) ?? fs.layout.label;
  } catch {
    return null; // not FAT
  }
}

async function findFatPartition(disk: BlockDev, parts: Partition[], match: { label?: string; number?: number }, epoch: number): Promise<Partition> {
  const seen: string[] = [];
  let byNumber: Partition | undefined;
  for (const p of parts) {
    const label = await fatLabel(new SliceDev(disk, p.start, p.size), epoch);
    seen.push(`${p.number}:${label === null ? 'not FAT' : JSON.stringify(label)}`);
    if (label === null) continue;
    if (match.label && label.toUpperCase() === match.label.toUpperCase()) return p;
    if (match.number === p.number) byNumber = p;
  }
  if (byNumber) return byNumber; // label not found: the numbered FAT partition is the documented fallback
  throw new Error(`no FAT partition labelled ${match.label ?? '-'} or numbered ${match.number ?? '-'} in the base image (found ${seen.join(', ') || 'no partitions'})`);
}

async function writeSeedFiles(fat: FatFs, dir: string, files: SeedFile[], removeDefaults: string[]): Promise<{ written: string[]; removed: string[] }> {
  const join = (n: string) => (dir ? `${dir.replace(/\/+$/, '')}/${n}` : n);
  const names = new Set(files.map((f) => f.name.toUpperCase()));
  const removed: string[] = [];
  for (const d of removeDefaults) if (!names.has(d.toUpperCase()) && (await fat.remove(join(d)))) removed.push(join(d));
  const written: string[] = [];
  for (const f of files) {
    await fat.writeFile(join(f.name), f.bytes);
    written.push(join(f.name));
  }
  return { written, removed };
}

export async function personalize(opts: PersonalizeOptions): Promise<PersonalizeResult> {
  const profile = typeof opts.profile === 'string' ? await loadProfile(opts.profile) : opts.profile;
  const base = opts.base ?? (await prepareProfileBase(opts, profile));
  const files = sortedSeedFiles(opts.files);
  const fh = await fs.open(base.rawPath, 'r');
  try {
    const disk = new OverlayDev(new FileDev(fh, base.size, true), base.blockSize);
    const table = await readPartitionTable(disk);
    if (table.scheme !== profile.partitionTable) {
      throw new BaseLayoutError(`profile ${profile.name} expects a ${profile.partitionTable.toUpperCase()} base, but ${base.inputPath} has ${table.scheme.toUpperCase()}`);
    }
    const seed = profile.seed;
    const done =
      seed.mode === 'fat-partition'
        ? await seedIntoFatPartition(disk, table, profile, seed, files, opts.epoch)
        : await seedIntoCidataPartition(disk, table, { profile, seed, base, files, epoch: opts.epoch });
    const { extents, data } = await disk.changedExtents((o, l) => isUnmapped(base.mapped, o, l));
    const delta = encodeDelta({ blockSize: base.blockSize, baseSize: base.size, baseSha256: base.rawSha256, extents, data });
    const max = opts.maxDeltaBytes ?? MAX_DELTA_BYTES;
    if (delta.length > max) throw new Error(`disk delta is ${delta.length} bytes, over the ${max}-byte budget per device: the seed files are too large for a delta`);
    return { delta, extents, changedBytes: totalLength(extents), base, ...done };
  } finally {
    await fh.close();
  }
}

type SeedWrite = Pick<PersonalizeResult, 'seedPartition' | 'createdPartition' | 'written' | 'removed' | 'cmdlineChanged'>;
type Seed<M> = Extract<Profile['seed'], { mode: M }>;

/** The base named by the options or the profile, with its sha256 pin. */
async function prepareProfileBase(opts: PersonalizeOptions, profile: Profile): Promise<PreparedBase> {
  const sha = opts.baseSha256 ?? profile.base?.sha256;
  const p = opts.basePath ?? profile.base?.path;
  if (!p || !sha) throw new Error(`profile ${profile.name}: no base image given (need a path and its sha256 pin)`);
  return prepareBase({ path: p, sha256: sha, cacheDir: opts.cacheDir });
}

/** The seed into the base's own FAT partition (a Pi's boot partition), and the kernel command line's additions. */
async function seedIntoFatPartition(disk: BlockDev, table: PartitionTable, profile: Profile, seed: Seed<'fat-partition'>, files: SeedFile[], epoch: number): Promise<SeedWrite> {
  const p = await findFatPartition(disk, table.partitions, seed.match, epoch);
  const fat = await FatFs.open(new SliceDev(disk, p.start, p.size), { epoch });
  const { written, removed } = await writeSeedFiles(fat, seed.dir, files, seed.removeDefaults);
  const cmdlineChanged = profile.cmdline ? await appendToCmdline(fat, profile, p.number) : false;
  await fat.flush();
  return { seedPartition: p.number, createdPartition: false, written, removed, cmdlineChanged };
}

async function appendToCmdline(fat: FatFs, profile: Profile, partition: number): Promise<boolean> {
  const { file, append } = profile.cmdline!;
  const st = await fat.stat(file);
  if (!st) throw new Error(`profile ${profile.name}: ${file} not found in partition ${partition} of the base image`);
  const old = Buffer.from(await fat.readFile(file)).toString('utf8');
  const next = appendCmdlineArgs(old, append);
  if (next === old) return false;
  await fat.writeFile(file, Buffer.from(next, 'utf8'));
  return true;
}

interface CidataJob {
  profile: Profile;
  seed: Seed<'cidata-partition'>;
  base: PreparedBase;
  files: SeedFile[];
  epoch: number;
}

/** The seed into a GPT partition labelled CIDATA: the base's own, or one made (and formatted) in a gap of the base. */
async function seedIntoCidataPartition(disk: BlockDev, table: PartitionTable, job: CidataJob): Promise<SeedWrite> {
  const { seed, files, epoch } = job;
  const existing = table.partitions.find((p) => p.name.toUpperCase() === seed.label.toUpperCase());
  // the base may already carry a CIDATA partition: write into it
  const part = existing ?? (await addCidataPartition(disk, table.gpt!, job));
  const dev = new SliceDev(disk, part.start, part.size);
  if (!existing) {
    await mkfsFat(dev, { label: seed.label, volumeId: seedVolumeId(files, seed.label), epoch, hiddenSectors: part.start / SECTOR });
  }
  const fat = await FatFs.open(dev, { epoch });
  let done: { written: string[]; removed: string[] };
  try {
    done = await writeSeedFiles(fat, '', files, ['user-data', 'meta-data', 'network-config']);
  } catch (err) {
    if (err instanceof FatFullError) {
      throw new Error(`the seed files do not fit the ${part.size}-byte ${seed.label} partition (raise seed.maxBytes, or hand in fewer files): ${err.message}`);
    }
    throw err;
  }
  await fat.flush();
  return { seedPartition: part.number, createdPartition: !existing, ...done, cmdlineChanged: false };
}

/** A new GPT entry in the first aligned gap large enough, at most seed.maxBytes. */
async function addCidataPartition(disk: BlockDev, gpt: Gpt, { profile, seed, base, files }: CidataJob): Promise<Partition> {
  const align = seed.alignSectors;
  const gap = gptGaps(gpt)
    .map((g) => ({ first: Math.ceil(g.firstLba / align) * align, last: g.lastLba }))
    .find((g) => (g.last - g.first + 1) * SECTOR >= seed.minBytes);
  if (!gap) {
    throw new Error(
      `profile ${profile.name}: no unallocated gap of ${seed.minBytes} bytes before the last partition of ${base.inputPath} for the ${seed.label} partition ` +
        `(the space after the last partition is kept for the data volume); use a base with a gap, or seed mode fat-partition on the ESP`,
    );
  }
  const sectors = Math.min(gap.last - gap.first + 1, Math.floor(seed.maxBytes / SECTOR));
  const entry = await addGptPartition(disk, gpt, {
    typeGuid: GPT_TYPES.basicData,
    // stable per base + seed content, so rebuilds agree and devices still differ
    uniqueGuid: guidToString(guidFromSeed(`${base.rawSha256}:${seedVolumeId(files, seed.label)}`)),
    firstLba: gap.first,
    lastLba: gap.first + sectors - 1,
    attributes: 0n,
    name: seed.label,
  });
  return { number: entry.number, start: gap.first * SECTOR, size: sectors * SECTOR, type: GPT_TYPES.basicData, name: seed.label };
}
