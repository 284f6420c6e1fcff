// `build` with an airgap K3s install and Flux's controller image archives pinned (gitops.flux.install.images):
// the archives are verified at build time, staged once with K3s's airgap files, listed in every device's
// SHA256SUMS, linked into bundle/k3s/airgap/ for provision, and with --base-image written onto the fleet
// base's EFK3S partition. A wrong archive or a controller image without one stops the build positioned
// (FILE:LINE:COL) with nothing written for the devices. Real docker-archive tars made here, real pins.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { signWith, testBuildKey } from './test-signer.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { build, type BuildOptions } from '../../scripts/pipeline/build/index.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { InventoryError } from '../../scripts/util/errors.ts';
import { makeImageArchive } from '../../scripts/testkit/image-archive.ts';
import { airgapInventory, entry, fluxBundle, KC, SC } from '../inventory/airgap-fixture.ts';
import { buildRaspiFixture, pseudo, type Fixture } from '../disk/fixtures.ts';
import { mcopyOut } from '../disk/helpers.ts';
const HAVE_TOOLS = requireTools(['fsck.vfat', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'mtype', 'sfdisk'], 'test/pipeline/image-archives.test.ts');

const EPOCH = 1767225600;
const ONLY = ['ulsan1-line1-001', 'changwon2-server'];
let tmp: string;
let signingKey: openpgp.PrivateKey;
let fx: Fixture;
let pins: Record<'sc' | 'kc', { sha256: string; bytes: number }>;
const k3s: Record<string, Buffer> = {
  'k3s-arm64': pseudo('ia k3s', 300_001),
  'k3s-airgap-images-arm64.tar.zst': pseudo('ia images', 200_003),
  'install.sh': Buffer.from('#!/bin/sh\necho fake installer\n'),
};

/** an inventory directory: K3s airgap files, the Flux bundle, the two archives, the inventory from `images` */
function inventoryDir(name: string, images: string): string {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'bundles/k3s'), { recursive: true });
  mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
  for (const [n, b] of Object.entries(k3s)) writeFileSync(path.join(dir, 'bundles/k3s', n), b);
  writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), fluxBundle());
  for (const f of ['source-controller.tar', 'kustomize-controller.tar.zst']) writeFileSync(path.join(dir, 'bundles/flux', f), readFileSync(path.join(tmp, 'archives', f)));
  writeFileSync(
    path.join(dir, 'inventory.yaml'),
    airgapInventory(images, { binary: sha256Hex(k3s['k3s-arm64']), images: sha256Hex(k3s['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(k3s['install.sh']) }),
  );
  return path.join(dir, 'inventory.yaml');
}

async function opts(inventory: string, out: string, extra: Partial<BuildOptions> = {}): Promise<BuildOptions> {
  const secrets: SecretsSource = {
    async secretsFor(devices) {
      return new Map(devices.map((d) => [d.id, fixedSecretsFor(d)]));
    },
    sign: signWith(() => signingKey),
    async close() {},
  };
  const fleet = await loadInventoryFile(inventory);
  return { fleet, inventoryPath: inventory, outDir: out, sourceDateEpoch: EPOCH, concurrency: 2, reporter: new JsonReporter(), secrets, only: ONLY, ...extra } as BuildOptions;
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-ia-build-'));
  pins = {
    sc: await makeImageArchive(path.join(tmp, 'archives/source-controller.tar'), SC),
    kc: await makeImageArchive(path.join(tmp, 'archives/kustomize-controller.tar.zst'), KC),
  };
  signingKey = await testBuildKey(EPOCH);
  fx = buildRaspiFixture(path.join(tmp, 'base'));
}, 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const good = () => entry(SC, 'bundles/flux/source-controller.tar', pins.sc.sha256) + entry(KC, 'bundles/flux/kustomize-controller.tar.zst', pins.kc.sha256);

describe('build: pinned image archives travel with the K3s airgap files', () => {
  it('staged once, linked into each bundle, listed in SHA256SUMS and the manifest', async () => {
    const out = path.join(tmp, 'out-plain');
    const r = await build(await opts(inventoryDir('plain', good()), out));
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    for (const [name, p] of [
      ['source-controller.tar', pins.sc],
      ['kustomize-controller.tar.zst', pins.kc],
    ] as const) {
      expect(sha256Hex(readFileSync(path.join(out, 'k3s-airgap', name)))).toBe(p.sha256);
      const dev = path.join(out, 'devices', ONLY[0], 'bundle/k3s/airgap', name);
      expect(sha256Hex(readFileSync(dev))).toBe(p.sha256);
      expect(readFileSync(path.join(out, 'devices', ONLY[0], 'bundle/SHA256SUMS'), 'utf8')).toContain(`${p.sha256}  k3s/airgap/${name}`);
      const art = r.manifest.devices.find((d) => d.id === ONLY[0])!.artifacts.find((a) => a.path.endsWith(`bundle/k3s/airgap/${name}`));
      expect(art).toMatchObject({ sha256: p.sha256, bytes: p.bytes, secret: false });
    }
    expect(readFileSync(path.join(out, 'devices', ONLY[0], 'bundle/firstboot.sh'), 'utf8')).toContain(
      `EF_IMAGE_ARCHIVES='source-controller.tar=${pins.sc.sha256} kustomize-controller.tar.zst=${pins.kc.sha256}'`,
    );
  }, 120_000);

  it.runIf(HAVE_TOOLS)(
    "--base-image: the archives are on the fleet base's EFK3S partition, byte for byte",
    async () => {
      const out = path.join(tmp, 'out-base');
      const r = await build(await opts(inventoryDir('base', good()), out, { baseImage: { given: 'base/raspi.img', path: fx.path } }));
      expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
      const fb = r.manifest.baseImage!.fleetBase!;
      const img = path.join(out, fb.path);
      expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, 'source-controller.tar', tmp))).toBe(pins.sc.sha256);
      expect(sha256Hex(mcopyOut(img, fb.airgapPartition.start, 'kustomize-controller.tar.zst', tmp))).toBe(pins.kc.sha256);
    },
    180_000,
  );

  it('a wrong archive stops the build at its sha256 line, naming both hashes; nothing written for the devices', async () => {
    const inv = inventoryDir('wrong', entry(SC, 'bundles/flux/source-controller.tar', pins.kc.sha256) + entry(KC, 'bundles/flux/kustomize-controller.tar.zst', pins.kc.sha256));
    const out = path.join(tmp, 'out-wrong');
    const err = await build(await opts(inv, out)).catch((e) => e);
    expect(err).toBeInstanceOf(InventoryError);
    const text = (err as InventoryError).format();
    const line =
      readFileSync(inv, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes(`sha256: "${pins.kc.sha256}"`)) + 1;
    expect(text).toMatch(
      new RegExp(
        `^\\S*inventory.yaml:${line}:\\d+: flux image archive bundles/flux/source-controller.tar \\(${SC.replace(/\./g, '\\.')}\\): .* has sha256 ${pins.sc.sha256} but the inventory pins ${pins.kc.sha256}`,
        'm',
      ),
    );
    expect(existsSync(path.join(out, 'devices', ONLY[0]))).toBe(false);
    expect(existsSync(path.join(out, 'manifest.json'))).toBe(false);
  });

  it("a controller image with no archive stops the build's Flux stage (before anything is written): nothing could pull it on an airgapped device", async () => {
    const inv = inventoryDir('missing', entry(SC, 'bundles/flux/source-controller.tar', pins.sc.sha256));
    const fleet = await loadInventoryFile(inv);
    const err = await prepareFlux(fleet, inv).catch((e) => e);
    expect(err).toBeInstanceOf(InventoryError);
    const listLine =
      readFileSync(inv, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes(`- image: ${SC}`)) + 1;
    expect((err as InventoryError).format()).toMatch(
      new RegExp(`:${listLine}:\\d+: the Flux bundle's kustomize-controller runs ghcr\\.io/fluxcd/kustomize-controller:v1\\.9\\.6, which has no pinned archive in gitops\\.flux\\.install\\.images`),
    );
    // with both pinned, the stage is ready
    expect((await prepareFlux(await loadInventoryFile(inventoryDir('both', good())), inv)).problem).toBeUndefined();
  });
});
