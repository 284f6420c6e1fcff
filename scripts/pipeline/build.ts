// `edgeforge build`, the thin shell around the pure renderers:
//   select devices -> verify inputs (airgap bundle, base image) -> inputs hash per device
//   (pipeline/select/inputs-hash.ts; no secret decrypted) -> skip the devices the previous signed manifest already
//   has with those inputs -> keys for the rest -> per device: render, seed image, disk delta, staged directory
//   (pipeline/write.ts) -> one sync of the output filesystem -> manifest prepared -> staged directories
//   swapped in -> signature + manifest.json renamed last (the commit point) -> retired and removed devices go.
//   A device that fails is reported and the others complete (exit 1); bad input stops the build before
//   anything is written (exit 2); an output that cannot be written (full, read-only) stops it before the
//   commit, the previous build left as it was (exit 1).
//
// OUT/
//   manifest.json, manifest.json.asc, signing-key.asc
//   k3s-airgap/*                       airgap installs: the verified bundle, once
//   base/base.json                     with --base-image: the base the deltas apply to (disk stage)
//   base/ab-<key>.img (+ .json)        with --base-image and os: the base rearranged into two root slots (A/B)
//   base/fleet-<key>.img (+ .json)     with --base-image and an airgap install: the base + the EFK3S partition
//                                      holding the K3s airgap files; base.json, deltas, flash use it
//   devices/<id>/seed/{user-data,meta-data,network-config}
//   devices/<id>/seed.img              FAT "CIDATA" with the three seed files
//   devices/<id>/bundle/...            the first-boot bundle (see scripts/render/device.ts)
//   devices/<id>/disk.delta            with --base-image
import { promises as fs, rmSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { renderDevice, type DeviceSecrets, type RenderOptions } from '../render/device.ts';
import type { RenderedFile } from '../render/files.ts';
import { sha256Hex } from '../util/hash.ts';
import { writeFileAtomic, prepareFileAtomic, sweepTempFiles } from '../util/atomic.ts';
import { BaseLayoutError, ManifestError, UserError } from '../util/errors.ts';
import type { DeviceResult, Reporter, StageSpec } from '../ui/reporter.ts';
import { makeSeedImage } from '../disk/seed-image.ts';
import { personalize, type PersonalizeResult } from '../disk/personalize.ts';
import { deltaRenderedFile, writeBaseRecord } from '../disk/output.ts';
import { airgapFleetBase, linkAirgapInto, stageAirgap } from './inputs/airgap.ts';
import { ringAirgap, ringOf } from '../render/day2/rings.ts';
import type { PreparedBase } from '../disk/base.ts';
import { sha256OfFile } from '../util/hash.ts';
import { breather } from '../util/breather.ts';
import { dataRanges, dataSha256, rangesLength } from '../util/sparse.ts';
import { discardStaged, stageDevice, stagingDir, swapIn, sweepDevices, syncOutput, type StagedDevice } from './write.ts';
import { deviceInputsHash, fleetInputsHash } from './select/inputs-hash.ts';
import { previousBuild, unchangedDevices } from './select/unchanged.ts';
import { selectDevices } from './select/devices.ts';
import { buildManifest, serializeManifest } from '../manifest/write.ts';
import { readManifestIfExists } from '../manifest/read.ts';
import { registryPullRecord } from '../render/flux/secrets.ts';
import { MANIFEST_NAME, type Manifest, type ManifestArtifact, type ManifestDevice } from '../manifest/types.ts';
import type { SecretsSource } from './secrets.ts';
import { abBaseFor, osManifest } from './os/build.ts';

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
  /** what the `render` stages read besides the inventory (Flux bundle, tang advertisements), for the inputs
   *  hash; without it, a build with `render` stages skips no device */
  renderInputs?: unknown;
  /** render every device even when its inputs are unchanged */
  force?: boolean;
}

export interface BuildResult {
  results: DeviceResult[];
  manifest: Manifest;
  manifestPath: string;
  signed: { fingerprint: string } | undefined;
  /** devices not rendered: inputs unchanged since the previous build */
  skipped: number;
  /** wall seconds per stage (render, images and write summed over devices; with --base-image they overlap) */
  timings: Record<string, number>;
}

/** errors of the output's filesystem: the whole build stops, the previous output stays */
const OUTPUT_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EFBIG', 'EMLINK']);

function artifact(outRel: string, f: Pick<RenderedFile, 'kind' | 'bytes' | 'secret'>): ManifestArtifact {
  const a: ManifestArtifact = { kind: f.kind, path: outRel, sha256: sha256Hex(f.bytes), bytes: f.bytes.length, secret: f.secret };
  // written with holes (pipeline/write.ts): where the data is, so verify hashes only that
  const data = dataRanges(f.bytes);
  if (data && rangesLength(data) < f.bytes.length) a.sparse = { data, sha256: dataSha256(f.bytes, data) };
  return a;
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
  // --only adds to the previous signed manifest: one that cannot vouch for the other devices is refused, never
  // replaced by a smaller signed one
  const previous = await previousBuild(outDir, o.secrets);
  if (o.only?.length && !o.shard && previous.untrusted) throw untrustedPrevious(outDir, previous.untrusted, Boolean(o.incremental));
  const devicesDir = path.join(outDir, 'devices');
  try {
    await fs.mkdir(outDir, { recursive: true });
    // what a killed build left: temp files (not inside devices/: pipeline/write.ts sweeps those directories)
    await sweepTempFiles(outDir, (name) => name === 'devices');
    await sweepDevices(devicesDir);
  } catch (err) {
    throw outputError(outDir, err);
  }
  const airgap = await stageAirgap(fleet, o.inventoryPath, outDir);
  let diskBase: PreparedBase | undefined;
  let fleetBaseNote = '';
  // OS updates (docs/os-updates.md): the cards get two root slots; the K3s partition and the deltas go on that
  if (o.baseImage && baseImage) {
    const ab = await abBaseFor(fleet, devices, { ...o.baseImage, sha256: baseImage.sha256 }, outDir);
    if (ab) {
      diskBase = ab.base;
      baseImage = { ...baseImage, abBase: ab.manifest };
      fleetBaseNote = `A/B base ${ab.manifest.path} (${ab.reused ? 'reused' : 'derived'}): slot A holds OS release ${ab.manifest.version}`;
    }
  }
  // the airgap files go into the base (one partition, fleet-wide), not into every device's delta
  if (o.baseImage && baseImage && airgap) {
    const fb = await airgapFleetBase(airgap, { path: o.baseImage.path, sha256: baseImage.sha256 }, outDir, diskBase);
    diskBase = fb.base;
    baseImage = { ...baseImage, fleetBase: fb.manifest };
    const p = fb.manifest.airgapPartition;
    fleetBaseNote = [fleetBaseNote, `fleet base ${fb.manifest.path} (${fb.reused ? 'reused' : 'derived'}): K3s airgap files on partition ${p.number} (${p.label}, ${Math.round(p.size / 1048576)} MiB)`].filter(Boolean).join('; ');
  }

  const timings: Record<string, number> = { inputs: 0, keys: 0, render: 0, images: 0, write: 0, gitops: 0, sync: 0, sign: 0, commit: 0 };
  const clock = () => performance.now();
  const since = (t: number) => (clock() - t) / 1000;

  // which devices need rendering: inputs hashed without decrypting anything, compared with the signed previous build
  let t = clock();
  const canSkip = Boolean(o.secrets.identities) && (!o.render || o.renderInputs !== undefined) && !o.force;
  const fleetHash = await fleetInputsHash(fleet, { sourceDateEpoch: o.sourceDateEpoch, baseImage, render: o.renderInputs ?? null, airgap: airgap?.files.map((f) => [f.dir ? `${f.dir}/${f.name}` : f.name, f.sha256]) ?? null });
  const inputsOf = async (ds: ResolvedDevice[]) => {
    const ids = o.secrets.identities ? await o.secrets.identities(ds) : new Map<string, string | undefined>();
    return new Map(ds.map((d) => [d.id, deviceInputsHash(fleetHash, fleet, d, ids.get(d.id))]));
  };
  const inputs = await inputsOf(devices);
  const prev = previous.manifest;
  const unchanged = canSkip && prev?.fleet === fleet.name ? await unchangedDevices(outDir, prev, inputs) : new Map<string, ManifestDevice>();
  const toRender = devices.filter((d) => !unchanged.has(d.id));
  timings.inputs = since(t);

  reporter.begin(`build ${fleet.name}`, devices.map((d) => d.id), BUILD_STAGES);
  if (fleetBaseNote) reporter.note(fleetBaseNote);
  if (unchanged.size) reporter.note(`${unchanged.size} of ${devices.length} device(s) unchanged since the previous build: not rendered`);
  for (const d of devices) if (unchanged.has(d.id)) reporter.done({ id: d.id, status: 'skipped', phase: 'done', message: 'unchanged since the previous build' });
  let secrets: Map<string, DeviceSecrets>;
  t = clock();
  try {
    let identities = toRender.length; // the sources count sites' identities too
    reporter.count?.('keys', 0, identities);
    secrets = await o.secrets.secretsFor(toRender, (done, total) => reporter.count?.('keys', done, (identities = total)));
    reporter.count?.('keys', identities, identities);
  } catch (err) {
    for (const d of toRender) reporter.done({ id: d.id, status: 'failed', phase: 'keys', message: (err as Error).message });
    await reporter.end();
    throw err;
  }
  timings.keys = since(t);

  const entries = new Map<string, ManifestDevice>(unchanged);
  const staged: StagedDevice[] = [];
  let fatal: Error | undefined;
  let baseRecorded = false;
  // Rendering, seed images and staging are CPU and synchronous small-file work on this thread (pipeline/write.ts
  // says why sync): running devices side by side gains nothing and blurs the per-stage split. The disk still
  // works in parallel: the kernel writes the page cache back while we go on, and one sync waits for it all.
  // Only --base-image (which reads the base asynchronously) runs --concurrency devices at once.
  const limit = pLimit(o.baseImage ? Math.max(1, o.concurrency) : 1);
  // ...and between devices the loop lets the progress view redraw (it would freeze for the whole stage otherwise)
  const breathe = breather();
  const timed = async <T>(stage: 'render' | 'images' | 'write', f: () => Promise<T> | T): Promise<T> => {
    const t0 = clock();
    try {
      return await f();
    } finally {
      timings[stage] += since(t0);
    }
  };
  await Promise.all(
    toRender.map((d) =>
      limit(async () => {
        await breathe();
        let phase = 'render';
        if (fatal) return reporter.done({ id: d.id, status: 'failed', phase, message: 'not built: the output cannot be written (see below)' });
        reporter.update(d.id, { phase });
        try {
          const rel = `devices/${d.id}`;
          // an identity made just now: its digest for the manifest and the stamp, so the next build can skip it
          if (!inputs.get(d.id) && o.secrets.identities) inputs.set(d.id, (await inputsOf([d])).get(d.id));
          const files = await timed('render', () => renderDevice(fleet, d, secrets.get(d.id)!, o.render));
          const seedFiles = ['user-data', 'meta-data', 'network-config'].map((n) => ({ name: n, bytes: files.find((f) => f.path === `seed/${n}`)!.bytes }));

          phase = 'seed-image';
          reporter.update(d.id, { phase });
          const seed = await timed('images', () => makeSeedImage(seedFiles, { epoch: o.sourceDateEpoch }));
          const extra: RenderedFile[] = [{ path: SEED_IMAGE, kind: 'seed-image', bytes: seed, mode: 0o600, secret: true }];

          let diskNote = '';
          if (o.baseImage && baseImage && d.profile.baseImage.sha256 && d.profile.baseImage.sha256 !== baseImage.sha256) diskNote = `no disk delta: profile ${d.profileName} pins another base image (${d.profile.baseImage.sha256.slice(0, 12)}…)`;
          if (o.baseImage && baseImage && (!d.profile.baseImage.sha256 || d.profile.baseImage.sha256 === baseImage.sha256)) {
            phase = 'disk';
            reporter.update(d.id, { phase });
            const layout = d.profile.baseImage.layout;
            let p: PersonalizeResult | undefined;
            try {
              p = await timed('images', () => personalize({ base: diskBase, basePath: o.baseImage!.path, baseSha256: baseImage!.sha256, profile: layout, files: seedFiles, epoch: o.sourceDateEpoch }));
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
          const airgapArtifacts: ManifestArtifact[] = [];
          const dir = stagingDir(devicesDir, d.id);
          const s = await timed('write', async () => {
            try {
              const st = await stageDevice(devicesDir, d.id, all, inputs.get(d.id), dir);
              if (airgap) {
                for (const a of await linkAirgapInto(airgap, dir, ringAirgap(fleet, ringOf(d))!.ring)) airgapArtifacts.push({ kind: 'other', path: `${rel}/${a.path}`, sha256: a.sha256, bytes: a.bytes, secret: false });
              }
              return st;
            } catch (err) {
              await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
              throw err;
            }
          });
          staged.push(s);
          entries.set(d.id, {
            id: d.id,
            region: d.region,
            site: d.site,
            profile: d.profileName,
            inputs: inputs.get(d.id),
            artifacts: [...all.map((f) => artifact(`${rel}/${f.path}`, f)), ...airgapArtifacts],
            ...optional('registry', registryPullRecord(d, fleet, secrets.get(d.id)!.deployKey?.privateKey)),
          });
          reporter.done({ id: d.id, status: 'ok', phase: 'done', message: [`${all.length + airgapArtifacts.length} files`, diskNote].filter(Boolean).join('; ') });
        } catch (err) {
          if (OUTPUT_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) fatal ??= outputError(outDir, err);
          reporter.done({ id: d.id, status: 'failed', phase, message: (err as Error).message });
        }
      }),
    ),
  );
  // the progress view stays open through signing (its last stage) and closes on any way out
  let results: DeviceResult[] | undefined;
  try {

    // nothing live has changed yet: an output that cannot be written leaves the previous build as it was
    const abort = async (err: unknown): Promise<never> => {
      await discardStaged(staged);
      throw outputError(outDir, err);
    };
    if (fatal) await abort(fatal);

    // the scaffold covers the whole fleet: a full build writes it, --only keeps the previous one
    // (with --shard, shard 1 writes it, so the merged manifest equals an unsharded build's)
    let gitops: { path: string } | undefined;
    t = clock();
    try {
      gitops = o.gitops && !o.only?.length && (!o.shard || o.shard.k === 1) ? await o.gitops(fleet, secrets, outDir) : undefined;
    } catch (err) {
      if (OUTPUT_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) await abort(err);
      throw err;
    }
    timings.gitops = since(t);

    // --only adds to a manifest of the same inventory and epoch instead of dropping the other devices
    const manifestPath = path.join(outDir, MANIFEST_NAME);
    const devicesOut = [...entries.values()];
    const gone: string[] = [];
    if (!o.only?.length && !o.shard) {
      // a full build owns devices/: what is no longer active (revoked, replaced, removed) goes after the commit
      const active = new Set(fleet.active.map((d) => d.id));
      for (const name of await fs.readdir(devicesDir).catch(() => [] as string[])) if (!active.has(name) && /^[a-z0-9][a-z0-9-]*$/.test(name)) gone.push(name);
    }
    if (o.only?.length && !o.shard) {
      const before = prev ?? (o.secrets.verifySignature ? undefined : await previousManifest(manifestPath));
      // --changed-since: the devices it skipped were shown unchanged, so their previous artifacts stand
      if (before && before.fleet === fleet.name && (o.incremental || (before.inventorySha256 === fleet.inventorySha256 && before.sourceDateEpoch === o.sourceDateEpoch))) {
        const activeIds = new Set(fleet.active.map((d) => d.id));
        // --changed-since: revoked or removed since: their files go with their manifest entries
        if (o.incremental) for (const d of before.devices) if (!activeIds.has(d.id) && /^[a-z0-9][a-z0-9-]*$/.test(d.id)) gone.push(d.id);
        for (const d of before.devices) if (!entries.has(d.id) && activeIds.has(d.id)) devicesOut.push(d);
        gitops = before.gitops;
      }
    }
    const manifest = buildManifest(
      // the last publish stays on record until the next one (a rebuild does not unpublish anything)
      { fleet: fleet.name, inventorySha256: fleet.inventorySha256, sourceDateEpoch: o.sourceDateEpoch, baseImage, gitops, ...optional('oci', prev?.fleet === fleet.name ? prev.oci : undefined), os: osManifest(fleet), devices: devicesOut },
      fleet.devices.map((d) => d.id),
    );
    const bytes = Buffer.from(serializeManifest(manifest));

    // durability, once: every staged file on disk before a manifest can vouch for it
    t = clock();
    try {
      await syncOutput(outDir);
    } catch (err) {
      await abort(err);
    }
    timings.sync = since(t);

    t = clock();
    let signature: Awaited<ReturnType<SecretsSource['sign']>> | undefined;
    let signError: Error | undefined;
    try {
      reporter.count?.('sign', 0, 1);
      signature = await o.secrets.sign(bytes, o.sourceDateEpoch);
      reporter.count?.('sign', 1, 1);
    } catch (err) {
      signError = err as Error;
    }
    timings.sign = since(t);

    // the manifest and its signature are prepared (written, fsynced) while the previous ones still stand
    t = clock();
    const prepared = [];
    try {
      if (signature) {
        await writeFileAtomic(path.join(outDir, 'signing-key.asc'), signature.publicKey, { skipIfSame: true });
        prepared.push(await prepareFileAtomic(path.join(outDir, 'manifest.json.asc'), signature.signature, { skipIfSame: true }));
      }
      prepared.push(await prepareFileAtomic(manifestPath, bytes, { skipIfSame: true }));
    } catch (err) {
      for (const p of prepared) await p.discard();
      await abort(err);
    }
    // the commit: staged directories in, then signature, then the manifest (a reader who finds it finds its signature)
    killPoint('staged');
    const retired: string[] = [];
    for (const [i, s] of staged.entries()) {
      if (i === Math.floor(staged.length / 2)) killPoint('half-swapped');
      const r = await swapIn(s);
      if (r) retired.push(r);
    }
    killPoint('swapped');
    if (signError) await fs.rm(path.join(outDir, 'manifest.json.asc'), { force: true });
    for (const [i, p] of prepared.entries()) {
      if (i === 1) killPoint('signature-renamed');
      await p.commit();
    }
    await syncOutput(outDir);
    // after the commit: what the new manifest no longer lists
    for (const dir of [...retired, ...gone.map((id) => path.join(devicesDir, id))]) rmSync(dir, { recursive: true, force: true });
    timings.commit = since(t);
    if (signError) throw new UserError(`manifest.json written but NOT signed: ${signError.message}`, 1);
    results = await reporter.end();
    return { results, manifest, manifestPath, signed: signature && { fingerprint: signature.fingerprint }, skipped: unchanged.size, timings };
  } finally {
    if (!results) await reporter.end();
  }
}

/** `{key: value}`, or nothing when value is undefined (keeps manifest keys absent rather than undefined). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Tests kill the build at named points of the commit (EDGEFORGE_TEST_KILL_AT), besides random SIGKILLs. */
function killPoint(name: string): void {
  if (process.env.EDGEFORGE_TEST_KILL_AT === name) process.kill(process.pid, 'SIGKILL');
}

/** --only against a previous build whose manifest cannot be trusted: what is wrong and the two ways on. */
function untrustedPrevious(outDir: string, why: string, incremental: boolean): UserError {
  const flag = incremental ? '--changed-since' : '--only';
  return new UserError(
    `${flag}: the previous build in ${outDir} cannot vouch for the devices this build would keep: ${why}. ` +
      `A build of only some devices would sign a manifest without the others. Build every device (without ${flag}), ` +
      `or put back the previous build's manifest.json and manifest.json.asc. Nothing was written.`,
  );
}

/** A failure of the output directory itself, said with its path and what was kept. */
function outputError(outDir: string, err: unknown): Error {
  if (err instanceof UserError) return err;
  const e = err as NodeJS.ErrnoException;
  const where = e.path ? ` (${e.path})` : '';
  return new UserError(`cannot write the build output in ${outDir}${where}: ${e.message}. The previous output and manifest in ${outDir} are unchanged.`, 1);
}
