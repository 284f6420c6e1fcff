// What flash reads from a build: OUT/base/base.json (the base's raw image and block map, written by the disk
// stage) and each device's disk-delta artifact, located through OUT/manifest.json and checked against the
// sha256 the manifest lists, so a swapped or damaged delta is never written to a card.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KeysError, ManifestError, UserError } from '../util/errors.ts';
import { parseManifest, readManifestIfExists } from '../manifest/read.ts';
import { MANIFEST_NAME, type Manifest } from '../manifest/types.ts';
import { decodeDelta, type Delta } from '../disk/delta.ts';
import { checkBaseRaw, readBaseRecord, deviceDeltaPath, BASE_RECORD_PATH } from '../disk/output.ts';
import type { FlashBase } from './engine.ts';
import { checkManifestSignature } from '../keys/verify.ts';
import { normalizeFingerprint } from '../keys/signing.ts';
import { readPinnedFingerprint } from '../keys/build-key.ts';

export interface FlashInputs {
  base: FlashBase & { sha256: string };
  manifest: Manifest | null;
  /** the device's delta, checked (manifest hash, base hash); throws a UserError naming the device */
  delta(id: string): Promise<{ delta: Delta; sha256: string; path: string }>;
}

/** `manifestBytes`: the manifest whose signature the caller checked; read exactly those, not the file again. */
export async function loadFlashInputs(outDir: string, manifestBytes?: Buffer): Promise<FlashInputs> {
  const mPath = path.join(outDir, MANIFEST_NAME);
  let manifest: Manifest | null;
  try {
    manifest = (manifestBytes ? parseManifest(manifestBytes, mPath) : await readManifestIfExists(mPath)) ?? null;
  } catch (err) {
    if (err instanceof ManifestError) throw new ManifestError(err.file, `${err.problem}; rebuild with "edgeforge build"`);
    throw err;
  }
  let rec;
  try {
    rec = await readBaseRecord(outDir);
  } catch (err) {
    throw new UserError(`${(err as Error).message} (flash needs the base image's block map in ${path.join(outDir, BASE_RECORD_PATH)})`);
  }
  if (manifest?.baseImage && manifest.baseImage.sha256 !== rec.input.sha256 && manifest.baseImage.sha256 !== rec.raw.sha256) {
    throw new UserError(`${mPath} names base image sha256 ${manifest.baseImage.sha256}, but ${BASE_RECORD_PATH} records ${rec.input.sha256}: the build output is mixed; rebuild`);
  }
  await checkBaseRaw(rec);
  const base = {
    path: rec.raw.path,
    sha256: rec.raw.sha256,
    size: rec.raw.size,
    blockSize: rec.blockSize,
    mapped: rec.mapped.map(([offset, length]) => ({ offset, length })),
  };
  return {
    base,
    manifest,
    async delta(id) {
      let p = path.join(outDir, deviceDeltaPath(id));
      let want: string | undefined;
      if (manifest) {
        const dev = manifest.devices.find((d) => d.id === id);
        if (!dev) throw new UserError(`device ${id} is not in ${mPath}: build it first ("edgeforge build --only ${id} --base-image FILE")`);
        const art = dev.artifacts.find((a) => a.kind === 'disk-delta');
        if (!art) throw new UserError(`device ${id} has no disk-delta artifact in ${mPath}: build with --base-image so it gets a disk image`);
        p = path.join(outDir, art.path);
        want = art.sha256;
      }
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(p);
      } catch {
        throw new UserError(`device ${id}: no disk delta at ${p}; build with --base-image to make one`);
      }
      const got = createHash('sha256').update(bytes).digest('hex');
      if (want && got !== want) throw new UserError(`device ${id}: ${p} has sha256 ${got}, but the manifest lists ${want}: the build output was changed; rebuild`);
      let delta: Delta;
      try {
        delta = decodeDelta(bytes, p);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      if (delta.baseSha256 !== base.sha256 || delta.baseSize !== base.size) {
        throw new UserError(`device ${id}: its delta was made for base ${delta.baseSha256}, not ${base.sha256}: rebuild`);
      }
      return { delta, sha256: got, path: p };
    },
  };
}

export interface SignedInputsOptions {
  outDir: string;
  /** OUT as the user gave it (for messages) */
  outGiven: string;
  keysDir: string;
  /** --fingerprint: the pin where keys/ is absent */
  fingerprint?: string;
  allowUnsigned: boolean;
  warn: (line: string) => void;
}

/**
 * Nothing reaches a card unless manifest.json carries the pinned build key's signature: the manifest pins each
 * delta's and the base's sha256, which flash checks before writing, so the chain runs key -> manifest -> bytes.
 */
export async function loadSignedFlashInputs(o: SignedInputsOptions): Promise<FlashInputs> {
  if (o.allowUnsigned) {
    o.warn('warning: --allow-unsigned: the build output is NOT checked against the build key signature');
    return loadFlashInputs(o.outDir);
  }
  let pinned: string;
  try {
    pinned = normalizeFingerprint(o.fingerprint ?? (await readPinnedFingerprint(o.keysDir)));
  } catch (err) {
    if (err instanceof KeysError) throw new UserError(`${err.message}; at a station without the keys directory, give --fingerprint FPR (from "edgeforge keys list" on the build machine)`);
    throw err;
  }
  const check = await checkManifestSignature(o.outDir, pinned, o.keysDir);
  if (!check.signature.ok || !check.manifestBytes) {
    throw new UserError(`refusing to flash: ${o.outGiven} is not signed by the pinned build key ${pinned}: ${check.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}. Nothing was written.`);
  }
  return loadFlashInputs(o.outDir, check.manifestBytes);
}
