// The k3s step of the first-boot program (dash, sandbox root) when the airgap files are not in the bundle but
// on the disk image's EFK3S partition: it finds the partition by PARTLABEL (else by FAT label), mounts it
// read-only, checks the pinned sha256s, installs and unmounts. The "partition" is a directory under the
// sandbox's /dev/disk/...; the EDGEFORGE_SYS stub plays mount (copies its files onto the mount point) and
// umount (empties it), recording both.
import { installBundle } from '../helpers.ts';
import { describe, it, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';

const INSTALLER = '#!/bin/sh\necho "fake k3s installer: $INSTALL_K3S_EXEC"\n';
const BLOBS: Record<string, string> = { 'k3s-arm64': 'fake k3s binary from the partition\n', 'k3s-airgap-images-arm64.tar.zst': 'fake images from the partition\n', 'install.sh': INSTALLER };

const STUB = `#!/bin/sh
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  modinfo|modprobe) true ;;
  mount) [ -z "\${EF_TEST_MOUNT_FAIL:-}" ] || exit 32; src=; dst=; for a; do src=$dst; dst=$a; done; cp -R "$src"/* "$dst"/ ;;
  umount) rm -rf "$2"/* ;;
esac
`;

let base: Fleet;
let root: string;
const ID = 'changwon2-press-001';

// a rollout in progress: the canary ring's release, in its directory on the partition
const CANARY = 'v1.36.5+k3s1';
const CANARY_DIR = 'v1.36.5-k3s1';
const CANARY_BLOBS: Record<string, string> = { 'k3s-arm64': `fake k3s ${CANARY} binary\n`, 'k3s-airgap-images-arm64.tar.zst': `fake ${CANARY} images\n`, 'install.sh': INSTALLER };
const pins = (b: Record<string, string>) => ({ binary: sha256Hex(b['k3s-arm64']), images: sha256Hex(b['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(b['install.sh']) });

function setup(id = ID, rollout = false): void {
  const f = structuredClone(base);
  f.k3s.install = { mode: 'airgap', bundle: 'bundles/k3s', sha256: pins(BLOBS), ...(rollout ? { canary: { bundle: 'bundles/k3s-canary', sha256: pins(CANARY_BLOBS) } } : {}) };
  if (rollout) {
    f.k3s.version = 'v1.35.6+k3s1';
    f.k3s.canaryVersion = CANARY;
  }
  const d = f.active.find((x) => x.id === id)!;
  installBundle(root, renderDevice(f, d, fixedSecretsFor(d)));
  writeFileSync(path.join(root, 'stub.sh'), STUB);
  chmodSync(path.join(root, 'stub.sh'), 0o755);
}

/** the simulated partition: a directory at /dev/disk/<by>/<name> holding the three files */
function partition(by: string, files: Record<string, string> = BLOBS): string {
  const dir = path.join(root, 'dev/disk', by);
  mkdirSync(dir, { recursive: true });
  for (const [n, t] of Object.entries(files)) writeFileSync(path.join(dir, n), t);
  return dir;
}

function runK3s(env: Record<string, string> = {}) {
  const r = spawnSync('dash', [path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh')], {
    env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EDGEFORGE_STEPS: 'preflight k3s', ...env },
    encoding: 'utf8',
  });
  const sys = existsSync(path.join(root, 'sys.log')) ? readFileSync(path.join(root, 'sys.log'), 'utf8') : '';
  rmSync(path.join(root, 'sys.log'), { force: true });
  return { code: r.status, stderr: r.stderr, sys };
}

const MNT = () => path.join(root, 'var/lib/edgeforge/tmp/k3s-airgap.mnt');

beforeAll(async () => {
  base = await exampleFleet();
});
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ef-k3s-part-'));
  setup();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('k3s step: airgap files from the EFK3S partition', () => {
  it('mounts /dev/disk/by-partlabel/edgeforge-k3s read-only, installs from it, unmounts', () => {
    expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap/k3s-arm64'))).toBe(false);
    const part = partition('by-partlabel/edgeforge-k3s');
    partition('by-label/EFK3S', { 'k3s-arm64': 'the wrong one\n' }); // PARTLABEL wins
    const r = runK3s();
    expect(r.code, r.stderr).toBe(0);
    expect(r.sys).toContain(`mount -t vfat -o ro,nosuid,nodev,noexec ${part} ${MNT()}\n`);
    expect(r.stderr).toContain('reading the K3s airgap files from partition /dev/disk/by-partlabel/edgeforge-k3s');
    expect(readFileSync(path.join(root, 'usr/local/bin/k3s'), 'utf8')).toBe(BLOBS['k3s-arm64']);
    expect(statSync(path.join(root, 'usr/local/bin/k3s')).mode & 0o777).toBe(0o755);
    expect(readFileSync(path.join(root, 'var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst'), 'utf8')).toBe(BLOBS['k3s-airgap-images-arm64.tar.zst']);
    // the installer runs from the mounted partition, before it is unmounted
    const lines = r.sys.trim().split('\n');
    const inst = lines.findIndex((l) => /^env INSTALL_K3S_SKIP_DOWNLOAD=true .* sh .*k3s-airgap\.mnt\/install\.sh$/.test(l));
    const um = lines.findIndex((l) => l === `umount ${MNT()}`);
    expect(inst).toBeGreaterThan(-1);
    expect(um).toBeGreaterThan(inst);
    expect(existsSync(MNT())).toBe(false);
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/k3s-installed'), 'utf8')).toMatch(/airgap agent/);
    // run again: installed, nothing mounted
    const again = runK3s();
    expect(again.code).toBe(0);
    expect(again.sys).not.toMatch(/^mount /m);
  });

  it('falls back to /dev/disk/by-label/EFK3S', () => {
    const part = partition('by-label/EFK3S');
    const r = runK3s();
    expect(r.code, r.stderr).toBe(0);
    expect(r.sys).toContain(` ${part} ${MNT()}\n`);
    expect(readFileSync(path.join(root, 'usr/local/bin/k3s'), 'utf8')).toBe(BLOBS['k3s-arm64']);
  });

  it('refuses a file on the partition that does not match its pin, and still unmounts', () => {
    partition('by-partlabel/edgeforge-k3s', { ...BLOBS, 'k3s-airgap-images-arm64.tar.zst': 'tampered\n' });
    const r = runK3s();
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/K3s airgap images: .*k3s-airgap\.mnt\/k3s-airgap-images-arm64\.tar\.zst has sha256 [0-9a-f]{64} but edgeforge pinned/);
    expect(r.sys).toContain(`umount ${MNT()}`);
    expect(r.sys).not.toMatch(/INSTALL_K3S/);
    expect(existsSync(path.join(root, 'usr/local/bin/k3s'))).toBe(false);
  });

  it('a partition that does not mount (no vfat?) stops the step with the reason, nothing to unmount', () => {
    partition('by-partlabel/edgeforge-k3s');
    const r = runK3s({ EF_TEST_MOUNT_FAIL: '1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot mount the K3s airgap partition /dev/disk/by-partlabel/edgeforge-k3s read-only');
    expect(r.sys).not.toMatch(/^umount /m);
    expect(existsSync(path.join(root, 'var/lib/edgeforge/k3s-installed'))).toBe(false);
  });

  it('the bundle copy (provision) still wins over the partition', () => {
    partition('by-partlabel/edgeforge-k3s', { 'k3s-arm64': 'not this\n' });
    const dir = path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap');
    mkdirSync(dir, { recursive: true });
    for (const [n, t] of Object.entries(BLOBS)) writeFileSync(path.join(dir, n), t);
    const r = runK3s();
    expect(r.code, r.stderr).toBe(0);
    expect(r.sys).not.toMatch(/^mount /m);
    expect(r.sys).toMatch(/sh .*bundle\/k3s\/airgap\/install\.sh$/m);
  });

  it('neither bundle nor partition: stops naming both places', () => {
    const r = runK3s();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the K3s airgap files are not on this device: not in');
    expect(r.stderr).toContain('no K3s airgap partition (/dev/disk/by-partlabel/edgeforge-k3s or /dev/disk/by-label/EFK3S)');
    expect(r.stderr).toContain('edgeforge build --base-image');
    expect(r.sys).not.toMatch(/^mount /m);
  });

  describe('during a rollout (k3s.canaryVersion, k3s.install.canary)', () => {
    const withCanary = () => partition('by-partlabel/edgeforge-k3s', { ...BLOBS, ...Object.fromEntries(Object.entries(CANARY_BLOBS).map(([n, t]) => [`${CANARY_DIR}/${n}`, t])) });

    it("a canary-ring device installs its ring's release from its directory on the partition", () => {
      rmSync(root, { recursive: true, force: true });
      mkdirSync(root);
      setup('ulsan1-line1-001', true); // ulsan-plant-1: canary: true
      mkdirSync(path.join(root, 'dev/disk/by-partlabel/edgeforge-k3s', CANARY_DIR), { recursive: true });
      withCanary();
      const r = runK3s();
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(path.join(root, 'usr/local/bin/k3s'), 'utf8')).toBe(CANARY_BLOBS['k3s-arm64']);
      expect(readFileSync(path.join(root, 'var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst'), 'utf8')).toBe(CANARY_BLOBS['k3s-airgap-images-arm64.tar.zst']);
      expect(r.sys).toMatch(new RegExp(`^env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION=${CANARY.replace('+', '\\+')} .* sh .*k3s-airgap\\.mnt/${CANARY_DIR}/install\\.sh$`, 'm'));
      expect(readFileSync(path.join(root, 'var/lib/edgeforge/k3s-installed'), 'utf8')).toBe(`${CANARY} airgap server\n`);
    });

    it("a stable-ring device of the same fleet installs the stable release from the partition's root", () => {
      rmSync(root, { recursive: true, force: true });
      mkdirSync(root);
      setup(ID, true);
      mkdirSync(path.join(root, 'dev/disk/by-partlabel/edgeforge-k3s', CANARY_DIR), { recursive: true });
      withCanary();
      const r = runK3s();
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(path.join(root, 'usr/local/bin/k3s'), 'utf8')).toBe(BLOBS['k3s-arm64']);
      expect(readFileSync(path.join(root, 'var/lib/edgeforge/k3s-installed'), 'utf8')).toMatch(/^v1\.35\.6\+k3s1 airgap agent$/m);
    });

    it("an image without the canary release's directory: a permanent failure naming it, unmounted", () => {
      rmSync(root, { recursive: true, force: true });
      mkdirSync(root);
      setup('ulsan1-line1-001', true);
      partition('by-partlabel/edgeforge-k3s'); // only the stable release, at the root
      const r = runK3s();
      expect(r.code).toBe(78);
      expect(r.stderr).toContain(`K3s ${CANARY}'s airgap files are not on this device's K3s partition (/${CANARY_DIR}/ is missing k3s-arm64)`);
      expect(r.sys).toContain(`umount ${MNT()}`);
      expect(existsSync(path.join(root, 'usr/local/bin/k3s'))).toBe(false);
    });
  });
});
