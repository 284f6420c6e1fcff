// The first-boot program's k3s step (dash, sandbox root) with pinned container image archives (Flux's
// controllers): with an airgap install each archive is checked against its pin before any is placed, then put
// in K3s's image import directory (agent/images) before the installer starts K3s; a mismatch stops the step
// naming both hashes, with nothing placed and K3s not installed. The archives are real docker-archive tars
// made here; the "K3s partition" is a directory the EDGEFORGE_SYS stub "mounts" (as in
// firstboot-airgap-partition.test.ts).
import { installBundle } from '../helpers.ts';
import { describe, it, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { imageArchiveBytes } from '../../scripts/testkit/image-archive.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { ImageArchivePin } from '../../scripts/inventory/image-archives.ts';

const INSTALLER = '#!/bin/sh\necho "fake k3s installer: $INSTALL_K3S_EXEC"\n';
const K3S: Record<string, Buffer> = { 'k3s-arm64': Buffer.from('fake k3s\n'), 'k3s-airgap-images-arm64.tar.zst': Buffer.from('fake images\n'), 'install.sh': Buffer.from(INSTALLER) };
const ARCHIVES: Record<string, Buffer> = {
  'source-controller.tar': imageArchiveBytes('ghcr.io/fluxcd/source-controller:v1.4.1'),
  'kustomize-controller.tar': imageArchiveBytes('ghcr.io/fluxcd/kustomize-controller:v1.4.0'),
};
const STUB = `#!/bin/sh
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  modinfo|modprobe) true ;;
  mount) src=; dst=; for a; do src=$dst; dst=$a; done; cp "$src"/* "$dst"/ ;;
  umount) rm -f "$2"/* ;;
  env) case "$*" in *INSTALL_K3S*) ls "$EDGEFORGE_ROOT/var/lib/rancher/k3s/agent/images" >"$EDGEFORGE_ROOT/images-at-install" ;; esac ;;
esac
`;
const ID = 'ulsan1-line1-001';
let base: Fleet;
let root: string;

function pin(name: string, image: string, sha256 = sha256Hex(ARCHIVES[name])): ImageArchivePin {
  const at = { line: 1, col: 1 };
  return { component: 'flux', image, file: `bundles/flux/${name}`, name, sha256, at: { entry: at, file: at, sha256: at } };
}

function render(mode: 'airgap' | 'online', pins: ImageArchivePin[]): void {
  const f = structuredClone(base);
  f.k3s.install =
    mode === 'airgap'
      ? {
          mode: 'airgap',
          bundle: 'bundles/k3s',
          sha256: { binary: sha256Hex(K3S['k3s-arm64']), images: sha256Hex(K3S['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(K3S['install.sh']) },
        }
      : f.k3s.install;
  f.imageArchives = pins;
  const d = f.active.find((x) => x.id === ID)!;
  installBundle(root, renderDevice(f, d, fixedSecretsFor(d)));
  writeFileSync(path.join(root, 'stub.sh'), STUB);
  chmodSync(path.join(root, 'stub.sh'), 0o755);
}

function partition(files: Record<string, Buffer>): void {
  const dir = path.join(root, 'dev/disk/by-partlabel/edgeforge-k3s');
  mkdirSync(dir, { recursive: true });
  for (const [n, b] of Object.entries(files)) writeFileSync(path.join(dir, n), b);
}

function runK3s() {
  const r = spawnSync('dash', [path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh')], {
    env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EDGEFORGE_STEPS: 'preflight k3s' },
    encoding: 'utf8',
  });
  return { code: r.status, stderr: r.stderr };
}

const IMAGES = () => path.join(root, 'var/lib/rancher/k3s/agent/images');
const both = [pin('source-controller.tar', 'ghcr.io/fluxcd/source-controller:v1.4.1'), pin('kustomize-controller.tar', 'ghcr.io/fluxcd/kustomize-controller:v1.4.0')];

beforeAll(async () => {
  base = await exampleFleet();
});
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ef-image-archives-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('k3s step: pinned container image archives', () => {
  it('the program carries the pins as NAME=SHA256 words; SHA256SUMS lists them under k3s/airgap/', () => {
    render('airgap', both);
    const prog = readFileSync(path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh'), 'utf8');
    expect(prog).toContain(`EF_IMAGE_ARCHIVES='source-controller.tar=${sha256Hex(ARCHIVES['source-controller.tar'])} kustomize-controller.tar=${sha256Hex(ARCHIVES['kustomize-controller.tar'])}'`);
    const sums = readFileSync(path.join(root, 'var/lib/edgeforge/bundle/SHA256SUMS'), 'utf8');
    expect(sums).toContain(`${sha256Hex(ARCHIVES['kustomize-controller.tar'])}  k3s/airgap/kustomize-controller.tar`);
  });

  it('from the K3s partition: checks and places every archive in agent/images before the installer starts K3s', () => {
    render('airgap', both);
    partition({ ...K3S, ...ARCHIVES });
    const r = runK3s();
    expect(r.code, r.stderr).toBe(0);
    for (const [n, b] of Object.entries(ARCHIVES)) expect(readFileSync(path.join(IMAGES(), n)).equals(b)).toBe(true);
    // what the installer (which starts K3s) found there: both archives and K3s's own images, no temp files
    expect(readFileSync(path.join(root, 'images-at-install'), 'utf8').trim().split('\n').sort()).toEqual(['k3s-airgap-images-arm64.tar.zst', 'kustomize-controller.tar', 'source-controller.tar']);
    expect(r.stderr).toMatch(/container image archives: 2 checked against their pins, 2 placed in \/var\/lib\/rancher\/k3s\/agent\/images/);
  });

  it('a tampered archive stops the step naming both hashes: nothing placed, K3s not installed', () => {
    render('airgap', both);
    const bad = imageArchiveBytes('ghcr.io/fluxcd/kustomize-controller:v1.4.0', 'something else\n');
    partition({ ...K3S, ...ARCHIVES, 'kustomize-controller.tar': bad });
    const r = runK3s();
    expect(r.code).toBe(78); // a pinned-hash mismatch is a permanent failure (not retried)
    expect(r.stderr).toContain(`container image archive kustomize-controller.tar: `);
    expect(r.stderr).toContain(`has sha256 ${sha256Hex(bad)} but edgeforge pinned ${sha256Hex(ARCHIVES['kustomize-controller.tar'])}`);
    expect(existsSync(IMAGES()) ? readdirSync(IMAGES()) : []).toEqual([]);
    expect(existsSync(path.join(root, 'usr/local/bin/k3s'))).toBe(false);
  });

  it('a missing archive stops the step naming the file', () => {
    render('airgap', both);
    partition({ ...K3S, 'source-controller.tar': ARCHIVES['source-controller.tar'] });
    const r = runK3s();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/container image archive kustomize-controller\.tar: .*kustomize-controller\.tar is missing/);
  });

  it('from the bundle (provision): the same placement; an online install carries no archives', () => {
    render('airgap', both);
    const dir = path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap');
    mkdirSync(dir, { recursive: true });
    for (const [n, b] of Object.entries({ ...K3S, ...ARCHIVES })) writeFileSync(path.join(dir, n), b);
    const r = runK3s();
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(IMAGES()).sort()).toEqual(['k3s-airgap-images-arm64.tar.zst', 'kustomize-controller.tar', 'source-controller.tar']);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root);
    render('online', both);
    const prog = readFileSync(path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh'), 'utf8');
    expect(prog).toContain(`EF_IMAGE_ARCHIVES=''`);
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/bundle/SHA256SUMS'), 'utf8')).not.toContain('controller.tar');
  });
});
