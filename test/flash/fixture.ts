// A build output the way `edgeforge build --base-image` leaves it, made with the disk stage's own functions
// on a small realistic base (sfdisk, mkfs.vfat, mke2fs -d): OUT/base/base.json, OUT/devices/<id>/disk.delta
// and a manifest.json listing each delta with its sha256.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareBase } from '../../scripts/disk/base.ts';
import { writeBaseRecord, deviceDeltaPath } from '../../scripts/disk/output.ts';
import { personalize } from '../../scripts/disk/personalize.ts';
import { materialize } from '../../scripts/disk/materialize.ts';
import { buildGptFixture, buildRaspiFixture, deviceSeed } from '../disk/fixtures.ts';

export const EPOCH = 1767225600;
const dirs: string[] = [];

export function tmp(name: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), `ef-flash-${name}-`));
  dirs.push(d);
  return d;
}

export function cleanupTmp(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface BuiltOut {
  outDir: string;
  basePath: string;
  baseSize: number;
  ids: string[];
  /** image materialize's result for a device (the reference a flashed file must equal) */
  materialized(id: string): Promise<Buffer>;
}

export async function buildOut(name: string, ids: string[], layout: 'raspi-mbr' | 'uefi-gpt' = 'raspi-mbr'): Promise<BuiltOut> {
  const dir = tmp(name);
  const fx = layout === 'raspi-mbr' ? buildRaspiFixture(path.join(dir, 'fx')) : buildGptFixture(path.join(dir, 'fx'));
  const outDir = path.join(dir, 'out');
  mkdirSync(outDir, { recursive: true });
  const base = await prepareBase({ path: fx.path, sha256: fx.sha256 });
  await writeBaseRecord(outDir, base, layout);
  const devices = [];
  for (const id of ids) {
    const p = await personalize({ base, profile: layout, files: deviceSeed(id), epoch: EPOCH });
    const rel = deviceDeltaPath(id);
    mkdirSync(path.dirname(path.join(outDir, rel)), { recursive: true });
    writeFileSync(path.join(outDir, rel), p.delta, { mode: 0o600 });
    devices.push({ id, region: 'r', site: 's', profile: 'p', artifacts: [{ kind: 'disk-delta', path: rel, sha256: sha(p.delta), bytes: p.delta.length, secret: true }] });
  }
  writeFileSync(
    path.join(outDir, 'manifest.json'),
    JSON.stringify({ format: 'edgeforge-manifest/1', fleet: 'test', inventorySha256: '0'.repeat(64), sourceDateEpoch: EPOCH, baseImage: { path: fx.path, sha256: fx.sha256 }, devices }, null, 2),
  );
  return {
    outDir,
    basePath: base.rawPath,
    baseSize: base.size,
    ids,
    async materialized(id) {
      const to = path.join(dir, `ref-${id}.img`);
      await materialize({ base, delta: readFileSync(path.join(outDir, deviceDeltaPath(id))), to });
      return readFileSync(to);
    },
  };
}
