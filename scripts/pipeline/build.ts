// `edgeforge build`, the thin shell around the pure renderers:
//   select devices -> verify inputs (airgap bundle, base image) -> keys -> per device: render, write
//   atomically, seed image, disk delta -> remove what the fleet no longer has -> manifest.json (+ signature)
//   written last. A device that fails is reported and the others complete (exit 1); bad input stops the
//   build before anything is written (exit 2).
//
// OUT/
//   manifest.json, manifest.json.asc, signing-key.asc
//   k3s-airgap/*                       airgap installs: the verified bundle, once
//   base/base.json                     with --base-image: the base the deltas apply to (disk stage)
//   base/fleet-<key>.img (+ .json)     with --base-image and an airgap install: the base + the EFK3S partition
//                                      holding the K3s airgap files; base.json, deltas, flash use it
//   devices/<id>/seed/{user-data,meta-data,network-config}
//   devices/<id>/seed.img              FAT "CIDATA" with the three seed files
//   devices/<id>/bundle/...            the first-boot bundle (see scripts/render/device.ts)
//   devices/<id>/disk.delta            with --base-image
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Fleet } from '../inventory/fleet.ts';
import { renderDevice, type DeviceSecrets, type RenderOptions } from '../render/device.ts';
import type { RenderedFile } from '../render/files.ts';
import { sha256Hex } from '../util/hash.ts';
import { writeFileAtomic, sweepTempFiles } from '../util/atomic.ts';
import { BaseLayoutError, ManifestError, UserError } from '../util/errors.ts';
import type { DeviceResult, Reporter, StageSpec } from '../ui/reporter.ts';
import { makeSeedImage } from '../disk/seed-image.ts';
import { personalize, type PersonalizeResult } from '../disk/personalize.ts';
import { deltaRenderedFile, writeBaseRecord } from '../disk/output.ts';
import { airgapFleetBase, linkAirgapInto, stageAirgap } from './inputs/airgap.ts';
import type { PreparedBase } from '../disk/base.ts';
import { sha256OfFile } from '../util/hash.ts';
import { writeDeviceDir } from './write.ts';
import { selectDevices } from './select/devices.ts';
import { buildManifest, serializeManifest } from '../manifest/write.ts';
import { readManifestIfExists } from '../manifest/read.ts';
import { MANIFEST_NAME, type Manifest, type ManifestArtifact, type ManifestDevice } from '../manifest/types.ts';
import type { SecretsSource } from './secrets.ts';

export const SEED_IMAGE = 'seed.img';

/** what the progress view shows a build as: keys and sign for the whole run, the rest per device */
const BUILD_STAGES: StageSpec[] = [{ name: 'keys', batch: true }, 'render', { name: 'images', phases: ['seed-image', 'disk'] }, 'write', { name: 'sign', batch: true }];

export interface BuildOptions {
  fleet: Fleet;
  /** absolute path of the inventory (the airgap bundle is relative to it) */
  inventoryPath: string;
  outDir: string;
  only?: string[];
  /** --shard K/N: this machine builds the devices whose id hashes to shard K (CI matrices); shard 1 also writes gitops/ */
  shard?: { k: number; n: number };
  /** --changed-since: `only` lists the changed devices; the previous manifest's other active devices are kept */
  incremental?: boolean;
  /** --base-image: path as given, and resolved */
  baseImage?: { given: string; path: string };
  sourceDateEpoch: number;
  concurrency: number;
  reporter: Reporter;
  secrets: SecretsSource;
  render?: RenderOptions;
  /** extra whole-build outputs (the GitOps scaffold): returns the manifest's gitops entry */
  gitops?: (fleet: Fleet, secrets: Map<string, DeviceSecrets>, outDir: string) => Promise<{ path: string } | undefined>;
}

export interface BuildResult {
  results: DeviceResult[];
  manifest: Manifest;
  manifestPath: string;
  signed: { fingerprint: string } | undefined;
}

function artifact(outRel: string, f: Pick<RenderedFile, 'kind' | 'bytes' | 'secret'>): ManifestArtifact {
  return { kind: f.kind, path: outRel, sha256: sha256Hex(f.bytes), bytes: f.bytes.length, secret: f.secret };
}

/** The previous build's manifest, if there is a usable one (an unreadable one is rebuilt, not merged). */
async function previousManifest(file: string): Promise<Manifest | undefined> {
  try {
    return await readManifestIfExists(file);
  } catch (err) {
    if (err instanceof ManifestError) return undefined;
    throw err;
  }
}

export async function build(o: BuildOptions): Promise<BuildResult> {
  const { fleet, outDir, reporter } = o;
  const devices = selectDevices(fleet, o.only, o.shard);
  // inputs first: a wrong checksum stops the build before any device is touched
  let baseImage: Manifest['baseImage'];
  if (o.baseImage) {
    const st = await fs.stat(o.baseImage.path).catch(() => undefined);
    if (!st?.isFile()) throw new UserError(`--base-image ${o.baseImage.given}: no such file. Nothing was written.`);
    baseImage = { path: o.baseImage.given, sha256: (await sha256OfFile(o.baseImage.path)).sha256 };
    // the inventory pins base images per profile: a different file is refused before anything is written
    const pins = new Map<string, string[]>();
    for (const d of devices) {
      const pin = d.profile.baseImage.sha256;
      if (pin) pins.set(pin, [...(pins.get(pin) ?? []), d.profileName]);
    }
    const layoutsWanted = new Set(devices.map((d) => d.profile.baseImage.layout));
    const matching = [...pins.keys()].includes(baseImage.sha256);
    if (pins.size && !matching && layoutsWanted.size === 1) {
      const [pin, profiles] = [...pins.entries()][0];
      throw new UserError(
        `--base-image ${o.baseImage.given} has sha256 ${baseImage.sha256}, but profile ${[...new Set(profiles)].join(', ')} pins baseImage.sha256 ${pin} in ${fleet.file}. ` +
          'Use the pinned image, or update the pin after reviewing the new image. Nothing was written.',
      );
    }
  }
  await fs.mkdir(outDir, { recursive: true });
  await sweepTempFiles(outDir);
  const airgap = await stageAirgap(fleet, o.inventoryPath, outDir);
  // the airgap files go into the base (one partition, fleet-wide), not into every device's delta
  let diskBase: PreparedBase | undefined;
  let fleetBaseNote = '';
  if (o.baseImage && baseImage && airgap) {
    const fb = await airgapFleetBase(airgap, { path: o.baseImage.path, sha256: baseImage.sha256 }, outDir);
    diskBase = fb.base;
    baseImage = { ...baseImage, fleetBase: fb.manifest };
    const p = fb.manifest.airgapPartition;
    fleetBaseNote = `fleet base ${fb.manifest.path} (${fb.reused ? 'reused' : 'derived'}): K3s airgap files on partition ${p.number} (${p.label}, ${Math.round(p.size / 1048576)} MiB)`;
  }

  reporter.begin(`build ${fleet.name}`, devices.map((d) => d.id), BUILD_STAGES);
  if (fleetBaseNote) reporter.note(fleetBaseNote);
  let secrets: Map<string, DeviceSecrets>;
  try {
    reporter.count?.('keys', 0, devices.length);
    secrets = await o.secrets.secretsFor(devices, (done, total) => reporter.count?.('keys', done, total));
    reporter.count?.('keys', devices.length, devices.length);
  } catch (err) {
    for (const d of devices) reporter.done({ id: d.id, status: 'failed', phase: 'keys', message: (err as Error).message });
    await reporter.end();
    throw err;
  }

  const entries = new Map<string, ManifestDevice>();
  let baseRecorded = false;
  const limit = pLimit(o.concurrency);
  await Promise.all(
    devices.map((d) =>
      limit(async () => {
        let phase = 'render';
        reporter.update(d.id, { phase });
        try {
          const rel = `devices/${d.id}`;
          const dir = path.join(outDir, rel);
          const files = renderDevice(fleet, d, secrets.get(d.id)!, o.render);
          const seedFiles = ['user-data', 'meta-data', 'network-config'].map((n) => ({ name: n, bytes: files.find((f) => f.path === `seed/${n}`)!.bytes }));

          phase = 'seed-image';
          reporter.update(d.id, { phase });
          const extra: RenderedFile[] = [{ path: SEED_IMAGE, kind: 'seed-image', bytes: await makeSeedImage(seedFiles, { epoch: o.sourceDateEpoch }), mode: 0o600, secret: true }];

          let diskNote = '';
          if (o.baseImage && baseImage && d.profile.baseImage.sha256 && d.profile.baseImage.sha256 !== baseImage.sha256) diskNote = `no disk delta: profile ${d.profileName} pins another base image (${d.profile.baseImage.sha256.slice(0, 12)}…)`;
          if (o.baseImage && baseImage && (!d.profile.baseImage.sha256 || d.profile.baseImage.sha256 === baseImage.sha256)) {
            phase = 'disk';
            reporter.update(d.id, { phase });
            const layout = d.profile.baseImage.layout;
            let p: PersonalizeResult | undefined;
            try {
              p = await personalize({ base: diskBase, basePath: o.baseImage.path, baseSha256: baseImage.sha256, profile: layout, files: seedFiles, epoch: o.sourceDateEpoch });
            } catch (err) {
              // one --base-image fits one layout: devices of another profile keep their seed image only
              if (!(err instanceof BaseLayoutError)) throw err;
              diskNote = `no disk delta: ${(err as Error).message}`;
            }
            if (p) {
              extra.push(deltaRenderedFile(p.delta));
              if (!baseRecorded) {
                baseRecorded = true;
                await writeBaseRecord(outDir, p.base, layout);
              }
            }
          }

          phase = 'write';
          reporter.update(d.id, { phase });
          const all = [...files, ...extra];
          const keep = new Set<string>();
          const airgapArtifacts: ManifestArtifact[] = [];
          if (airgap) {
            for (const a of await linkAirgapInto(airgap, dir)) {
              keep.add(a.path);
              airgapArtifacts.push({ kind: 'other', path: `${rel}/${a.path}`, sha256: a.sha256, bytes: a.bytes, secret: false });
            }
          }
          await writeDeviceDir(dir, all, keep);
          entries.set(d.id, {
            id: d.id,
            region: d.region,
            site: d.site,
            profile: d.profileName,
            artifacts: [...all.map((f) => artifact(`${rel}/${f.path}`, f)), ...airgapArtifacts],
          });
          reporter.done({ id: d.id, status: 'ok', phase: 'done', message: [`${all.length + airgapArtifacts.length} files`, diskNote].filter(Boolean).join('; ') });
        } catch (err) {
          reporter.done({ id: d.id, status: 'failed', phase, message: (err as Error).message });
        }
      }),
    ),
  );
  // the progress view stays open through signing (its last stage) and closes on any way out
  let results: DeviceResult[] | undefined;
  try {
    // a full build owns devices/: what is no longer active (revoked, replaced, removed) goes, secrets included
    if (!o.only?.length && !o.shard) {
      const active = new Set(fleet.active.map((d) => d.id));
      const dirs = await fs.readdir(path.join(outDir, 'devices')).catch(() => [] as string[]);
      for (const name of dirs) if (!active.has(name) && /^[a-z0-9][a-z0-9-]*$/.test(name)) await fs.rm(path.join(outDir, 'devices', name), { recursive: true, force: true });
    }

    // the scaffold covers the whole fleet: a full build writes it, --only keeps the previous one
    // (with --shard, shard 1 writes it, so the merged manifest equals an unsharded build's)
    let gitops = o.gitops && !o.only?.length && (!o.shard || o.shard.k === 1) ? await o.gitops(fleet, secrets, outDir) : undefined;

    // --only adds to a manifest of the same inventory and epoch instead of dropping the other devices
    const manifestPath = path.join(outDir, MANIFEST_NAME);
    const devicesOut = [...entries.values()];
    if (o.only?.length && !o.shard) {
      const prev = await previousManifest(manifestPath);
      // --changed-since: the devices it skipped were shown unchanged, so their previous artifacts stand
      if (prev && prev.fleet === fleet.name && (o.incremental || (prev.inventorySha256 === fleet.inventorySha256 && prev.sourceDateEpoch === o.sourceDateEpoch))) {
        const activeIds = new Set(fleet.active.map((d) => d.id));
        if (o.incremental) {
          // revoked or removed since: their files go with their manifest entries
          for (const d of prev.devices) if (!activeIds.has(d.id) && /^[a-z0-9][a-z0-9-]*$/.test(d.id)) await fs.rm(path.join(outDir, 'devices', d.id), { recursive: true, force: true });
        }
        for (const d of prev.devices) if (!entries.has(d.id) && activeIds.has(d.id)) devicesOut.push(d);
        gitops = prev.gitops;
      }
    }
    const manifest = buildManifest(
      { fleet: fleet.name, inventorySha256: fleet.inventorySha256, sourceDateEpoch: o.sourceDateEpoch, baseImage, gitops, devices: devicesOut },
      fleet.devices.map((d) => d.id),
    );
    const bytes = Buffer.from(serializeManifest(manifest));
    // signature and key first, the manifest last: a reader who finds the manifest finds its signature
    let signed: BuildResult['signed'];
    try {
      reporter.count?.('sign', 0, 1);
      const s = await o.secrets.sign(bytes, o.sourceDateEpoch);
      reporter.count?.('sign', 1, 1);
      await writeFileAtomic(path.join(outDir, 'signing-key.asc'), s.publicKey, { skipIfSame: true });
      await writeFileAtomic(path.join(outDir, 'manifest.json.asc'), s.signature, { skipIfSame: true });
      signed = { fingerprint: s.fingerprint };
    } catch (err) {
      await fs.rm(path.join(outDir, 'manifest.json.asc'), { force: true });
      await writeFileAtomic(manifestPath, bytes, { skipIfSame: true });
      throw new UserError(`manifest.json written but NOT signed: ${(err as Error).message}`, 1);
    }
    await writeFileAtomic(manifestPath, bytes, { skipIfSame: true });
    results = await reporter.end();
    return { results, manifest, manifestPath, signed };
  } finally {
    if (!results) await reporter.end();
  }
}
