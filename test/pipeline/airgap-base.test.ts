// `build --base-image` with an airgap K3s install: the airgap files go into the fleet base's EFK3S partition
// (once per build output), the deltas stay per-device small, the base record / `image materialize` / flash
// inputs all use the fleet base, the manifest records it and still verifies, and a rebuild gives the same bytes.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { signWith, testBuildKey } from './test-signer.ts';
import { runCli } from '../helpers.ts';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { build, type BuildOptions } from '../../scripts/pipeline/build/index.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import type { Manifest } from '../../scripts/manifest/types.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { verifyBuild } from '../../scripts/keys/verify.ts';
import { readBaseRecord } from '../../scripts/disk/output.ts';
import { MAX_DELTA_BYTES } from '../../scripts/disk/personalize.ts';
import { loadFlashInputs } from '../../scripts/flash/build-output.ts';
import { runFlash } from '../../scripts/flash/flash.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { mergeShards } from '../../scripts/lifecycle/merge.ts';
import { copyFleetBase } from '../../scripts/disk/fleet-base.ts';
import { KeysLayout } from '../../scripts/keys/layout.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { buildRaspiFixture, MT_ENV, pseudo, run, type Fixture } from '../disk/fixtures.ts';
import { fsckFat, mcopyOut } from '../disk/helpers.ts';
const HAVE_TOOLS = requireTools(['fsck.vfat', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'mtype', 'sfdisk'], 'test/pipeline/airgap-base.test.ts');

const EPOCH = 1767225600;
let tmp: string;
let fleet: Fleet;
let inventory: string;
let signingKey: openpgp.PrivateKey;
let fx: Fixture;
const blobs: Record<string, Buffer> = {
  'k3s-arm64': pseudo('airgap-base k3s', 700_001),
  'k3s-airgap-images-arm64.tar.zst': pseudo('airgap-base images', 1_500_003),
  'install.sh': Buffer.from('#!/bin/sh\necho fake installer\n'),
};

function source(): SecretsSource {
  return {
    async secretsFor(devices) {
      return new Map(devices.map((d) => [d.id, fixedSecretsFor(d)]));
    },
    sign: signWith(() => signingKey),
    async close() {},
  };
}

function opts(out: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return {
    fleet,
    inventoryPath: inventory,
    outDir: out,
    sourceDateEpoch: EPOCH,
    concurrency: 2,
    reporter: new JsonReporter(),
    secrets: source(),
    baseImage: { given: 'base/raspi.img', path: fx.path },
    ...extra,
  };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-airgap-base-'));
  const f = structuredClone(await exampleFleet());
  const inv = path.join(tmp, 'inv');
  mkdirSync(path.join(inv, 'bundles/k3s'), { recursive: true });
  for (const [n, b] of Object.entries(blobs)) writeFileSync(path.join(inv, 'bundles/k3s', n), b);
  f.k3s.install = {
    mode: 'airgap',
    bundle: 'bundles/k3s',
    sha256: { binary: sha256Hex(blobs['k3s-arm64']), images: sha256Hex(blobs['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(blobs['install.sh']) },
  };
  fleet = f;
  inventory = path.join(inv, 'inventory.yaml');
  signingKey = await testBuildKey(EPOCH);
  fx = buildRaspiFixture(path.join(tmp, 'base'));
}, 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('build --base-image, airgap install: the K3s files travel in the fleet base', () => {
  let out: string;
  let manifest: Manifest;
  beforeAll(async () => {
    out = path.join(tmp, 'out');
    const r = await build(opts(out));
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    manifest = r.manifest;
  }, 180_000);

  it('records the fleet base in the manifest and the base record; the input base is untouched', async () => {
    const fb = manifest.baseImage!.fleetBase!;
    expect(manifest.baseImage).toMatchObject({ path: 'base/raspi.img', sha256: fx.sha256 });
    expect(fb.path).toMatch(/^base\/fleet-[0-9a-f]{16}\.img$/);
    expect(fb.airgapPartition).toMatchObject({ number: 3, scheme: 'mbr', label: 'EFK3S' });
    const img = path.join(out, fb.path);
    expect(sha256Hex(readFileSync(img))).toBe(fb.sha256);
    expect(statSync(img).size).toBe(fb.bytes);
    const rec = await readBaseRecord(out);
    expect(rec.input).toEqual({ path: fx.path, sha256: fx.sha256 });
    expect(rec.raw).toMatchObject({ path: img, sha256: fb.sha256, size: fb.bytes });
    expect(sha256Hex(readFileSync(fx.path))).toBe(fx.sha256);
    // the signature and every artifact still verify
    const v = await verifyBuild(out, signingKey.getFingerprint());
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it('the partition (sfdisk) holds the three files byte for byte (mtools), its FAT is clean (fsck.vfat)', () => {
    const fb = manifest.baseImage!.fleetBase!;
    const img = path.join(out, fb.path);
    const p3 = JSON.parse(run('sfdisk', ['-J', img])).partitiontable.partitions[2];
    expect(p3).toMatchObject({ node: `${img}3`, start: fb.airgapPartition.start / 512, size: fb.airgapPartition.size / 512, type: 'c' });
    fsckFat(img, fb.airgapPartition.start, fb.airgapPartition.size, tmp);
    for (const [n, b] of Object.entries(blobs)) expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, n, tmp)), n).toBe(sha256Hex(b));
  });

  it('every disk delta stays far under 2 MiB (the files are not in it) and applies to the fleet base', async () => {
    const deltas = manifest.devices.flatMap((d) => d.artifacts.filter((a) => a.kind === 'disk-delta'));
    expect(deltas.length).toBeGreaterThan(0);
    for (const a of deltas) {
      expect(a.bytes).toBeLessThan(MAX_DELTA_BYTES);
      expect(a.bytes).toBeLessThan(blobs['k3s-airgap-images-arm64.tar.zst'].length); // would not fit if the files were in it
    }
    // what flash reads: the fleet base and deltas made for it
    const inputs = await loadFlashInputs(out);
    expect(inputs.base.path).toBe(path.join(out, manifest.baseImage!.fleetBase!.path));
    expect(inputs.base.sha256).toBe(manifest.baseImage!.fleetBase!.sha256);
    const d = await inputs.delta('ulsan1-line1-001');
    expect(d.delta.baseSha256).toBe(manifest.baseImage!.fleetBase!.sha256);
  });

  it('`image materialize` writes an image with the airgap partition and the device seed', async () => {
    const img = path.join(tmp, 'ulsan1.img');
    const r = await runCli(['image', 'materialize', '--out', out, '--device', 'ulsan1-line1-001', '--to', img]);
    expect(r.code, r.stderr).toBe(0);
    const fb = manifest.baseImage!.fleetBase!;
    const t = JSON.parse(run('sfdisk', ['-J', img])).partitiontable.partitions;
    expect(t).toHaveLength(3);
    expect(t[2]).toMatchObject({ start: fb.airgapPartition.start / 512, type: 'c' });
    for (const [n, b] of Object.entries(blobs)) expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, n, tmp)), n).toBe(sha256Hex(b));
    const ud = execFileSync(tool('mtype'), ['-i', `${img}@@${fx.fatOffset}`, '::user-data'], { env: MT_ENV });
    expect(sha256Hex(ud)).toBe(sha256Hex(readFileSync(path.join(out, 'devices/ulsan1-line1-001/seed/user-data'))));
  }, 60_000);

  it('`flash` to a card (a file here) writes the airgap partition from the fleet base: the card equals `image materialize`', async () => {
    const card = path.join(tmp, 'card-ulsan1.img');
    const r = await runFlash({ outDir: out, requests: [{ device: 'ulsan1-line1-001', target: card }], verify: true, reporter: new JsonReporter() });
    expect(r.results.map((x) => x.status)).toEqual(['ok']);
    expect(sha256Hex(readFileSync(card))).toBe(sha256Hex(readFileSync(path.join(tmp, 'ulsan1.img'))));
    const fb = manifest.baseImage!.fleetBase!;
    for (const [n, b] of Object.entries(blobs)) expect(sha256Hex(mcopyOut(card, fb.airgapPartition.start, n, tmp)), n).toBe(sha256Hex(b));
  }, 60_000);

  it('a rebuild is byte-identical: in place (the fleet base is reused) and in a fresh output directory', async () => {
    const fbPath = path.join(out, manifest.baseImage!.fleetBase!.path);
    const ino = statSync(fbPath).ino;
    const before = readFileSync(path.join(out, 'manifest.json'));
    await build(opts(out));
    expect(readFileSync(path.join(out, 'manifest.json')).equals(before)).toBe(true);
    expect(statSync(fbPath).ino).toBe(ino); // reused, not rewritten
    const out2 = path.join(tmp, 'out2');
    await build(opts(out2));
    expect(readFileSync(path.join(out2, 'manifest.json')).equals(before)).toBe(true);
    expect(readFileSync(path.join(out2, manifest.baseImage!.fleetBase!.path)).equals(readFileSync(fbPath))).toBe(true);
    for (const d of manifest.devices.filter((x) => x.artifacts.some((a) => a.kind === 'disk-delta'))) {
      expect(readFileSync(path.join(out2, 'devices', d.id, 'disk.delta')).equals(readFileSync(path.join(out, 'devices', d.id, 'disk.delta'))), d.id).toBe(true);
    }
    expect(readdirSync(path.join(out2, 'base')).sort()).toEqual(['base.json', path.basename(fbPath), path.basename(fbPath).replace(/\.img$/, '.json')].sort());
  }, 240_000);

  it('base.json also names the fleet base relative to OUT: a copied output directory materializes from its own copy', async () => {
    const fb = manifest.baseImage!.fleetBase!;
    expect(JSON.parse(readFileSync(path.join(out, 'base/base.json'), 'utf8')).raw).toMatchObject({ path: path.join(out, fb.path), inOut: fb.path });
    const moved = path.join(tmp, 'moved-out');
    execFileSync('cp', ['-a', '--sparse=always', out, moved]);
    expect((await readBaseRecord(moved)).raw.path).toBe(path.join(moved, fb.path));
    const img = path.join(tmp, 'moved.img');
    const r = await runCli(['image', 'materialize', '--out', moved, '--device', 'ulsan1-line1-001', '--to', img]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, 'k3s-arm64', tmp))).toBe(sha256Hex(blobs['k3s-arm64']));
  }, 60_000);

  it('`manifest merge` of shards brings the fleet base into the merged output: same manifest as one build, flash reads it', async () => {
    const keysDir = path.join(tmp, 'keys-pin');
    const layout = new KeysLayout(keysDir);
    mkdirSync(path.dirname(layout.buildFingerprintFile), { recursive: true });
    writeFileSync(layout.buildFingerprintFile, signingKey.getFingerprint().toUpperCase() + '\n');
    const shards = [1, 2].map((k) => path.join(tmp, `shard-${k}`));
    for (let k = 1; k <= 2; k++) await build(opts(shards[k - 1], { shard: { k, n: 2 } }));
    const merged = path.join(tmp, 'merged');
    const r = await mergeShards({ shards, outDir: merged, keysDir, fleet, sign: (b, e) => source().sign(b, e) });
    expect(r.problems).toEqual([]);
    const fb = r.manifest.baseImage!.fleetBase!;
    const img = path.join(merged, fb.path);
    expect(sha256Hex(readFileSync(img))).toBe(fb.sha256);
    expect(statSync(img).ino).toBe(statSync(path.join(shards[0], fb.path)).ino); // one filesystem: a hard link, no GBs copied
    expect(readFileSync(path.join(merged, 'manifest.json')).equals(readFileSync(path.join(out, 'manifest.json')))).toBe(true);
    expect((await verifyBuild(merged, signingKey.getFingerprint())).problems).toEqual([]);
    const inputs = await loadFlashInputs(merged);
    expect(inputs.base.path).toBe(img);
    expect(inputs.base.sha256).toBe(fb.sha256);
    // merging again reuses it; another filesystem (tmpfs) gets a copy of the mapped ranges with the same bytes
    expect(await copyFleetBase(shards[0], merged, fb.path, fb.sha256)).toBe('reused');
    const shm = mkdtempSync('/dev/shm/ef-fleet-base-');
    try {
      expect(await copyFleetBase(shards[0], shm, fb.path, fb.sha256)).toBe('copied');
      expect(sha256Hex(readFileSync(path.join(shm, fb.path)))).toBe(fb.sha256);
      expect(statSync(path.join(shm, fb.path)).blocks * 512).toBeLessThan(fb.bytes); // holes stay holes
      await expect(copyFleetBase(shards[0], path.join(shm, 'x'), fb.path, 'f'.repeat(64))).rejects.toThrow(/sha256/);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  }, 240_000);

  it('an online install keeps the plain base (no partition, no fleetBase)', async () => {
    const online = structuredClone(fleet);
    online.k3s.install = { mode: 'online', installScriptSha256: 'a'.repeat(64), installScriptUrl: 'https://get.k3s.io' };
    const o = path.join(tmp, 'out-online');
    const r = await build(opts(o, { fleet: online, only: ['ulsan1-line1-001'] }));
    expect(r.manifest.baseImage).toEqual({ path: 'base/raspi.img', sha256: fx.sha256 });
    expect((await readBaseRecord(o)).raw.path).toBe(fx.path);
  }, 120_000);
});

// during a rollout the canary ring's new devices install k3s.canaryVersion, so the fleet base
// carries both releases (the canary's in its release's directory) and each device's seed names its ring's.
describe.runIf(HAVE_TOOLS)('build --base-image, airgap install, a rollout in progress: the fleet base carries both releases', () => {
  const CANARY = 'v1.36.5+k3s1';
  const DIR = 'v1.36.5-k3s1';
  const canaryBlobs: Record<string, Buffer> = {
    'k3s-arm64': pseudo('airgap-base k3s canary', 700_003),
    'k3s-airgap-images-arm64.tar.zst': pseudo('airgap-base images canary', 1_500_007),
    'install.sh': Buffer.from('#!/bin/sh\necho fake installer, canary\n'),
  };
  const CANARY_DEVICE = 'ulsan1-line1-001'; // ulsan-plant-1 has canary: true
  const STABLE_DEVICE = 'changwon2-press-001';
  let out: string;
  let rolled: Fleet;
  let manifest: Manifest;
  beforeAll(async () => {
    const dir = path.join(path.dirname(inventory), 'bundles/k3s-canary');
    mkdirSync(dir, { recursive: true });
    for (const [n, b] of Object.entries(canaryBlobs)) writeFileSync(path.join(dir, n), b);
    rolled = structuredClone(fleet);
    rolled.k3s.version = 'v1.35.6+k3s1'; // the stable ring's release (the blobs above); the canary ring moves to CANARY
    rolled.k3s.canaryVersion = CANARY;
    if (rolled.k3s.install.mode !== 'airgap') throw new Error('fixture: airgap expected');
    rolled.k3s.install.canary = {
      bundle: 'bundles/k3s-canary',
      sha256: { binary: sha256Hex(canaryBlobs['k3s-arm64']), images: sha256Hex(canaryBlobs['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(canaryBlobs['install.sh']) },
    };
    out = path.join(tmp, 'out-rollout');
    const r = await build(opts(out, { fleet: rolled, only: [CANARY_DEVICE, STABLE_DEVICE] }));
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    manifest = r.manifest;
  }, 180_000);

  it('the K3s partition holds the stable release at its root and the canary release in its directory (mtools, fsck.vfat)', async () => {
    const fb = manifest.baseImage!.fleetBase!;
    const img = path.join(out, fb.path);
    fsckFat(img, fb.airgapPartition.start, fb.airgapPartition.size, tmp);
    for (const [n, b] of Object.entries(blobs)) expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, n, tmp)), n).toBe(sha256Hex(b));
    for (const [n, b] of Object.entries(canaryBlobs)) expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, `${DIR}/${n}`, tmp)), `${DIR}/${n}`).toBe(sha256Hex(b));
    expect((await verifyBuild(out, signingKey.getFingerprint())).problems).toEqual([]);
  });

  it("each device's first-boot program and provision bundle carry its own ring's release", () => {
    const vars = (id: string) => readFileSync(path.join(out, 'devices', id, 'bundle/firstboot.sh'), 'utf8');
    const c = vars(CANARY_DEVICE);
    expect(c).toContain(`EF_K3S_VERSION='${CANARY}'`);
    expect(c).toContain(`EF_K3S_AIRGAP_DIR='${DIR}'`);
    expect(c).toContain(`EF_K3S_BINARY_SHA256='${sha256Hex(canaryBlobs['k3s-arm64'])}'`);
    const st = vars(STABLE_DEVICE);
    expect(st).toContain(`EF_K3S_VERSION='v1.35.6+k3s1'`);
    expect(st).toMatch(/EF_K3S_AIRGAP_DIR=(''|$)/m);
    expect(st).toContain(`EF_K3S_BINARY_SHA256='${sha256Hex(blobs['k3s-arm64'])}'`);
    for (const [id, want] of [
      [CANARY_DEVICE, canaryBlobs],
      [STABLE_DEVICE, blobs],
    ] as const) {
      for (const [n, b] of Object.entries(want)) expect(sha256Hex(readFileSync(path.join(out, 'devices', id, 'bundle/k3s/airgap', n))), `${id} ${n}`).toBe(sha256Hex(b));
      const sums = readFileSync(path.join(out, 'devices', id, 'bundle/SHA256SUMS'), 'utf8');
      expect(sums).toContain(`${sha256Hex(want['k3s-arm64'])}  k3s/airgap/k3s-arm64`);
    }
  });

  it('after the rollout ends, a rebuild drops the canary release (partition and staging)', async () => {
    const promoted = structuredClone(rolled);
    if (promoted.k3s.install.mode !== 'airgap') throw new Error('fixture');
    promoted.k3s.version = CANARY;
    delete promoted.k3s.canaryVersion;
    promoted.k3s.install = { mode: 'airgap', bundle: promoted.k3s.install.canary!.bundle, sha256: promoted.k3s.install.canary!.sha256 };
    const r = await build(opts(out, { fleet: promoted, only: [CANARY_DEVICE, STABLE_DEVICE] }));
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    const fb = r.manifest.baseImage!.fleetBase!;
    const img = path.join(out, fb.path);
    for (const [n, b] of Object.entries(canaryBlobs)) expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, n, tmp)), n).toBe(sha256Hex(b));
    expect(readdirSync(path.join(out, 'k3s-airgap')).filter((n) => n.startsWith('v1.'))).toEqual([]);
    expect(readFileSync(path.join(out, 'devices', STABLE_DEVICE, 'bundle/firstboot.sh'), 'utf8')).toContain(`EF_K3S_VERSION='${CANARY}'`);
  }, 180_000);
});
