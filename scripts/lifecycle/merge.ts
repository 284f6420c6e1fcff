// Joining the outputs of `build --shard K/N` (built on separate CI machines) into one build: every
// shard is verified (signature against the pinned key, every artifact hash), their files are gathered
// into OUT, and one manifest is signed for the whole fleet. For the same inventory, keys and
// SOURCE_DATE_EPOCH the result is byte-identical to an unsharded build.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { verifyBuild } from '../keys/verify.ts';
import { buildManifest, serializeManifest } from '../manifest/write.ts';
import { readManifest } from '../manifest/read.ts';
import { MANIFEST_NAME, type Manifest, type ManifestDevice } from '../manifest/types.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { Fleet } from '../inventory/fleet.ts';
import { BASE_RECORD_PATH } from '../disk/output.ts';
import { copyFleetBase } from '../disk/fleet-base.ts';

export interface MergeInput {
  shards: string[];
  outDir: string;
  keysDir: string;
  fleet: Fleet;
  sign: (bytes: Uint8Array, epoch: number) => Promise<{ signature: string; publicKey: string; fingerprint: string }>;
}

async function copyTree(from: string, to: string): Promise<number> {
  let n = 0;
  await fs.mkdir(to, { recursive: true });
  for (const e of await fs.readdir(from, { withFileTypes: true })) {
    const a = path.join(from, e.name);
    const b = path.join(to, e.name);
    if (e.isDirectory()) n += await copyTree(a, b);
    else if (e.isFile()) {
      const st = await fs.stat(a);
      await writeFileAtomic(b, await fs.readFile(a), { mode: st.mode & 0o777, skipIfSame: true });
      n++;
    }
  }
  return n;
}

export async function mergeShards(m: MergeInput): Promise<{ manifest: Manifest; fingerprint: string; problems: string[] }> {
  const problems: string[] = [];
  const manifests: { dir: string; manifest: Manifest }[] = [];
  for (const dir of m.shards) {
    const v = await verifyBuild(dir, undefined, { keysDir: m.keysDir });
    if (!v.ok) {
      problems.push(
        `${dir}: ${v.signature.ok ? '' : `signature: ${v.signature.error ?? 'bad'}; `}${v.problems
          .slice(0, 5)
          .map((p) => `${p.path}: ${p.message}`)
          .join('; ')}`,
      );
      continue;
    }
    manifests.push({ dir, manifest: await readManifest(path.join(dir, MANIFEST_NAME)) });
  }
  if (problems.length) return { manifest: undefined as never, fingerprint: '', problems };
  const first = manifests[0].manifest;
  for (const { dir, manifest } of manifests) {
    if (manifest.fleet !== first.fleet) problems.push(`${dir}: fleet ${manifest.fleet}, but ${manifests[0].dir} is ${first.fleet}`);
    if (manifest.inventorySha256 !== first.inventorySha256) problems.push(`${dir}: built from another inventory (${manifest.inventorySha256.slice(0, 12)}… vs ${first.inventorySha256.slice(0, 12)}…)`);
    if (manifest.sourceDateEpoch !== first.sourceDateEpoch) problems.push(`${dir}: SOURCE_DATE_EPOCH ${manifest.sourceDateEpoch}, but ${manifests[0].dir} used ${first.sourceDateEpoch}`);
    if (JSON.stringify(manifest.baseImage) !== JSON.stringify(first.baseImage)) problems.push(`${dir}: another base image`);
  }
  if (first.inventorySha256 !== m.fleet.inventorySha256)
    problems.push(`the shards were built from another inventory than ${m.fleet.file} (sha256 ${first.inventorySha256.slice(0, 12)}… vs ${m.fleet.inventorySha256.slice(0, 12)}…)`);
  const devices = new Map<string, { dev: ManifestDevice; dir: string }>();
  for (const { dir, manifest } of manifests) {
    for (const d of manifest.devices) {
      const prev = devices.get(d.id);
      if (prev && JSON.stringify(prev.dev) !== JSON.stringify(d)) problems.push(`${d.id} is in ${prev.dir} and ${dir} with different artifacts`);
      else devices.set(d.id, { dev: d, dir });
    }
  }
  const missing = m.fleet.active.filter((d) => !devices.has(d.id)).map((d) => d.id);
  if (missing.length) problems.push(`no shard built ${missing.length} active device(s): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`);
  const gitopsFrom = manifests.filter((x) => x.manifest.gitops);
  if (problems.length) return { manifest: undefined as never, fingerprint: '', problems };

  // gather the files (a shard that already is OUT is left as it is)
  const outAbs = path.resolve(m.outDir);
  for (const { dev, dir } of devices.values()) {
    if (path.resolve(dir) === outAbs) continue;
    await copyTree(path.join(dir, 'devices', dev.id), path.join(m.outDir, 'devices', dev.id));
  }
  for (const g of gitopsFrom.slice(0, 1)) {
    if (path.resolve(g.dir) !== outAbs) await copyTree(path.join(g.dir, g.manifest.gitops!.path), path.join(m.outDir, g.manifest.gitops!.path));
  }
  for (const { dir } of manifests) {
    // the base-image record a delta build leaves beside the devices
    for (const extra of [BASE_RECORD_PATH]) {
      const src = path.join(dir, extra);
      if (path.resolve(dir) !== outAbs && (await fs.stat(src).catch(() => undefined))?.isFile()) await writeFileAtomic(path.join(m.outDir, extra), await fs.readFile(src), { skipIfSame: true });
    }
  }
  // the fleet base (base + the K3s airgap partition) the deltas apply to: every shard derived the same one
  // (same base, same bundle: checked above), so OUT needs one copy, or flash would find no base to write
  const fb = first.baseImage?.fleetBase;
  if (fb && !manifests.some((x) => path.resolve(x.dir) === outAbs)) {
    await copyFleetBase(manifests[0].dir, m.outDir, fb.path, fb.sha256);
  }
  const manifest = buildManifest(
    {
      fleet: first.fleet,
      inventorySha256: first.inventorySha256,
      sourceDateEpoch: first.sourceDateEpoch,
      baseImage: first.baseImage,
      gitops: gitopsFrom[0]?.manifest.gitops,
      devices: [...devices.values()].map((x) => x.dev),
    },
    m.fleet.devices.map((d) => d.id),
  );
  const bytes = Buffer.from(serializeManifest(manifest));
  const s = await m.sign(bytes, manifest.sourceDateEpoch);
  await writeFileAtomic(path.join(m.outDir, 'signing-key.asc'), s.publicKey, { skipIfSame: true });
  await writeFileAtomic(path.join(m.outDir, 'manifest.json.asc'), s.signature, { skipIfSame: true });
  await writeFileAtomic(path.join(m.outDir, 'manifest.json'), bytes, { skipIfSame: true });
  return { manifest, fingerprint: s.fingerprint, problems };
}
