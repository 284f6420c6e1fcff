// Where disk artifacts live in the build output, and the one call the CLI needs:
//
//   OUT/base/base.json             the base this build personalized: input path + pin, raw image path + sha256,
//                                  size, block size, block map (mapped ranges). Written once per build.
//                                  raw.inOut: the raw image relative to OUT when it is inside it (the fleet base).
//   OUT/devices/<id>/disk.delta    the device's delta (artifact kind disk-delta, secret: it holds the seed)
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { ManifestError, UserError } from '../util/errors.ts';
import { readManifestIfExists } from '../manifest/read.ts';
import { MANIFEST_NAME, type Manifest } from '../manifest/types.ts';
import type { RenderedFile } from '../render/files.ts';
import type { Extent } from './block.ts';
import { fileStamp, sameStamp, sha256File, type FileStamp, type PreparedBase } from './base.ts';
import { materialize, type MaterializeResult } from './materialize.ts';

export const BASE_RECORD_PATH = 'base/base.json';
export const DELTA_NAME = 'disk.delta';

export function deviceDeltaPath(deviceId: string): string {
  return `devices/${deviceId}/${DELTA_NAME}`;
}

export interface BaseRecord {
  format: 'edgeforge-base/1';
  profile: string;
  input: { path: string; sha256: string };
  /** `inOut`: the raw image's path relative to OUT when it lies inside OUT (the fleet base) */
  raw: { path: string; sha256: string; size: number; stamp: FileStamp; inOut?: string };
  blockSize: number;
  mappedExact: boolean;
  /** [offset, length] pairs, bytes, block aligned */
  mapped: [number, number][];
}

export function baseRecord(base: PreparedBase, profile: string): BaseRecord {
  return {
    format: 'edgeforge-base/1',
    profile,
    input: { path: base.inputPath, sha256: base.inputSha256 },
    raw: { path: base.rawPath, sha256: base.rawSha256, size: base.size, stamp: base.rawStamp },
    blockSize: base.blockSize,
    mappedExact: base.mappedExact,
    mapped: base.mapped.map((x) => [x.offset, x.length]),
  };
}

/**
 * Writes OUT/base/base.json; returns its path relative to OUT. A raw image inside OUT (the fleet base) is also
 * recorded relative to OUT (raw.inOut), so a copied output directory uses its own copy.
 */
export async function writeBaseRecord(outDir: string, base: PreparedBase, profile: string): Promise<string> {
  const rec = baseRecord(base, profile);
  const rel = path.relative(path.resolve(outDir), base.rawPath);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) rec.raw.inOut = rel.split(path.sep).join('/');
  await writeFileAtomic(path.join(outDir, BASE_RECORD_PATH), JSON.stringify(rec, null, 2) + '\n', { skipIfSame: true });
  return BASE_RECORD_PATH;
}

/** The delta as a rendered file of the device (path relative to the device directory). */
export function deltaRenderedFile(delta: Uint8Array): RenderedFile {
  return { path: DELTA_NAME, kind: 'disk-delta', bytes: delta, mode: 0o600, secret: true };
}

export async function readBaseRecord(outDir: string): Promise<BaseRecord> {
  const p = path.join(outDir, BASE_RECORD_PATH);
  let rec: BaseRecord;
  try {
    rec = JSON.parse(await fs.readFile(p, 'utf8'));
  } catch {
    throw new Error(`${p}: missing or unreadable; run "edgeforge build --base-image FILE" first`);
  }
  if (rec.format !== 'edgeforge-base/1') throw new Error(`${p}: unknown format ${JSON.stringify(rec.format)}`);
  // the fleet base: this OUT's own copy when it has one (a copied output); else the recorded absolute path
  // (e.g. a merged output whose shards keep theirs)
  if (rec.raw.inOut) {
    const own = path.resolve(outDir, rec.raw.inOut);
    if (
      await fs.stat(own).then(
        (st) => st.isFile(),
        () => false,
      )
    )
      rec.raw = { ...rec.raw, path: own };
  }
  return rec;
}

/**
 * The base's raw image is still the one the build recorded: its hash stands while the file is the same file
 * (stamp); otherwise it is hashed again before it is trusted. Throws a UserError saying what to do.
 */
export async function checkBaseRaw(rec: BaseRecord): Promise<void> {
  let stamp: FileStamp;
  try {
    stamp = await fileStamp(rec.raw.path);
  } catch {
    throw new UserError(`base image ${rec.raw.path} (recorded in ${BASE_RECORD_PATH}) is missing: restore it or rebuild`);
  }
  if (!sameStamp(stamp, rec.raw.stamp)) {
    const actual = await sha256File(rec.raw.path);
    if (actual !== rec.raw.sha256) throw new UserError(`base image ${rec.raw.path} changed since the build (sha256 ${actual}, recorded ${rec.raw.sha256}): rebuild`);
  }
}

/** The disk-delta artifact path for a device: from manifest.json when there is one, else the default layout. */
async function findDelta(outDir: string, deviceId: string): Promise<string> {
  const file = path.join(outDir, MANIFEST_NAME);
  let m: Manifest | undefined;
  try {
    m = await readManifestIfExists(file);
  } catch (err) {
    // no usable manifest (a bare delta build): the default layout
    if (!(err instanceof ManifestError)) throw err;
  }
  if (m) {
    const dev = m.devices.find((d) => d.id === deviceId);
    if (!dev) throw new Error(`device ${deviceId} is not in ${file}`);
    const art = dev.artifacts.find((a) => a.kind === 'disk-delta');
    if (art) return path.join(outDir, art.path);
  }
  return path.join(outDir, deviceDeltaPath(deviceId));
}

export interface MaterializeDeviceOptions {
  outDir: string;
  deviceId: string;
  to: string;
}

/** `edgeforge image materialize --device ID --to FILE`: base + the device's delta -> sparse raw image + .bmap. */
export async function materializeDevice(opts: MaterializeDeviceOptions): Promise<MaterializeResult> {
  const rec = await readBaseRecord(opts.outDir);
  const deltaPath = await findDelta(opts.outDir, opts.deviceId);
  let delta: Uint8Array;
  try {
    delta = await fs.readFile(deltaPath);
  } catch {
    throw new Error(`device ${opts.deviceId}: no disk delta at ${deltaPath}; build with --base-image to make one`);
  }
  await checkBaseRaw(rec);
  const mapped: Extent[] = rec.mapped.map(([offset, length]) => ({ offset, length }));
  return materialize({
    base: { rawPath: rec.raw.path, rawSha256: rec.raw.sha256, size: rec.raw.size, blockSize: rec.blockSize, mapped },
    delta,
    to: opts.to,
  });
}
