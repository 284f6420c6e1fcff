// `edgeforge build` end to end: output layout, manifest per SPEC.md, seed images read back with mtools,
// signature checked against the pinned build key, determinism, --only, --json, airgap bundles, failures.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { signWith, testBuildKey } from './test-signer.ts';
import { runCli } from '../helpers.ts';
import { EXAMPLE, exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { build, type BuildOptions } from '../../scripts/pipeline/build/index.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { verifyBuild } from '../../scripts/keys/verify.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { bundleHash, renderDevice } from '../../scripts/render/device.ts';
import { UserError } from '../../scripts/util/errors.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { Manifest } from '../../scripts/manifest/types.ts';
import { buildRaspiFixture, MT_ENV } from '../disk/fixtures.ts';
import { materializeDevice } from '../../scripts/disk/output.ts';
import { deviceBundle } from '../../scripts/provision/bundle.ts';
const HAVE_TOOLS = requireTools(['fsck.vfat', 'mke2fs', 'mkfs.vfat', 'mlabel', 'mtype', 'sfdisk', 'ssh-keygen'], 'test/pipeline/build.test.ts');

let tmp: string;
let fleet: Fleet;
let signingKey: openpgp.PrivateKey;
const EPOCH = 1767225600;

/** fixed secrets and a throwaway signing key: fast, and the same bytes every run */
function fixedSource(overrides: Partial<Record<string, ReturnType<typeof fixedSecretsFor>>> = {}): SecretsSource {
  return {
    async secretsFor(devices) {
      return new Map(devices.map((d) => [d.id, overrides[d.id] ?? fixedSecretsFor(d)]));
    },
    sign: signWith(() => signingKey),
    async close() {},
  };
}

function opts(out: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return { fleet, inventoryPath: EXAMPLE, outDir: out, sourceDateEpoch: EPOCH, concurrency: 4, reporter: new JsonReporter(), secrets: fixedSource(), ...extra };
}

function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.set(r, `${(statSync(path.join(dir, r)).mode & 0o777).toString(8)} ${sha256Hex(readFileSync(path.join(dir, r)))}`);
    }
  };
  walk('');
  return out;
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-build-'));
  fleet = await exampleFleet();
  signingKey = await testBuildKey(EPOCH);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('build output', () => {
  let out: string;
  let manifest: Manifest;
  beforeAll(async () => {
    out = path.join(tmp, 'out');
    const r = await build(opts(out));
    expect(r.results.every((x) => x.status === 'ok')).toBe(true);
    manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  }, 120_000);

  it('manifest.json is exactly the SPEC format, and every artifact is there with its size, hash and mode', () => {
    expect(Object.keys(manifest)).toEqual(['format', 'fleet', 'inventorySha256', 'sourceDateEpoch', 'devices']);
    expect(manifest).toMatchObject({ format: 'edgeforge-manifest/1', fleet: 'acme-smart-factory', inventorySha256: fleet.inventorySha256, sourceDateEpoch: EPOCH });
    expect(manifest.devices.map((d) => d.id)).toEqual(fleet.active.map((d) => d.id));
    for (const d of manifest.devices) {
      const dev = fleet.active.find((x) => x.id === d.id)!;
      expect(Object.keys(d)).toEqual(['id', 'region', 'site', 'profile', 'artifacts']);
      expect([d.region, d.site, d.profile]).toEqual([dev.region, dev.site, dev.profileName]);
      const kinds = new Set(d.artifacts.map((a) => a.kind));
      for (const k of ['user-data', 'meta-data', 'network-config', 'seed-image', 'k3s-config', 'firstboot']) expect(kinds.has(k as never), `${d.id} ${k}`).toBe(true);
      expect(kinds.has('k3s-registries')).toBe(Boolean(dev.registryMirror));
      for (const a of d.artifacts) {
        // a file written with holes also says where its data is (util/sparse.ts)
        expect(Object.keys(a)).toEqual(a.kind === 'seed-image' ? ['kind', 'path', 'sha256', 'bytes', 'secret', 'sparse'] : ['kind', 'path', 'sha256', 'bytes', 'secret']);
        expect(a.path.startsWith(`devices/${d.id}/`)).toBe(true);
        const bytes = readFileSync(path.join(out, a.path));
        expect(bytes.length).toBe(a.bytes);
        expect(sha256Hex(bytes)).toBe(a.sha256);
        if (a.secret) expect(statSync(path.join(out, a.path)).mode & 0o777, a.path).toBe(0o600);
      }
      expect(d.artifacts.find((a) => a.kind === 'user-data')!.secret).toBe(true);
      expect(d.artifacts.find((a) => a.kind === 'seed-image')!.secret).toBe(true);
    }
  });

  it("provision's view of the bundle (from the manifest) is exactly the bundle the build wrote: same SHA256SUMS, same hash", () => {
    for (const d of manifest.devices) {
      const b = deviceBundle(d);
      expect(b.sums).toBe(readFileSync(path.join(out, 'devices', d.id, 'bundle/SHA256SUMS'), 'utf8'));
      expect(b.firstboot).toBe('firstboot.sh');
    }
  });

  it('the device directory holds exactly what renderDevice renders, plus the seed image', () => {
    const d = fleet.active[0];
    const files = renderDevice(fleet, d, fixedSecretsFor(d));
    for (const f of files) expect(sha256Hex(readFileSync(path.join(out, 'devices', d.id, f.path)))).toBe(sha256Hex(f.bytes));
    expect([...tree(path.join(out, 'devices', d.id)).keys()].sort()).toEqual([...files.map((f) => f.path), 'seed.img'].sort());
    expect(bundleHash(files)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('seed.img is a FAT volume labelled CIDATA holding the three seed files (read back with mtools, checked by fsck.vfat)', () => {
    for (const d of fleet.active.slice(0, 3)) {
      const img = path.join(out, 'devices', d.id, 'seed.img');
      execFileSync(tool('fsck.vfat'), ['-n', img]);
      expect(execFileSync(tool('mlabel'), ['-i', img, '-s', '::'], { encoding: 'utf8' })).toMatch(/CIDATA/);
      for (const n of ['user-data', 'meta-data', 'network-config']) {
        const got = execFileSync(tool('mtype'), ['-i', img, `::${n}`]);
        expect(sha256Hex(got), `${d.id} ${n}`).toBe(sha256Hex(readFileSync(path.join(out, 'devices', d.id, 'seed', n))));
      }
    }
  });

  it('the signature is a valid detached signature over manifest.json by the build key', async () => {
    const sig = await openpgp.readSignature({ armoredSignature: readFileSync(path.join(out, 'manifest.json.asc'), 'utf8') });
    const key = await openpgp.readKey({ armoredKey: readFileSync(path.join(out, 'signing-key.asc'), 'utf8') });
    const v = await openpgp.verify({
      message: await openpgp.createMessage({ binary: readFileSync(path.join(out, 'manifest.json')) }),
      signature: sig,
      verificationKeys: key,
      date: new Date(EPOCH * 1000 + 1000),
    });
    await expect(v.signatures[0].verified).resolves.toBe(true);
  });

  it('same inventory + same secrets + same SOURCE_DATE_EPOCH -> byte-identical output, manifest and signature included', async () => {
    const out2 = path.join(tmp, 'out-again');
    await build(opts(out2));
    expect(tree(out2)).toEqual(tree(out));
  }, 120_000);

  it('a rebuild leaves unchanged files alone and removes what is no longer rendered or no longer active', async () => {
    const out3 = path.join(tmp, 'out-stale');
    await build(opts(out3));
    const ud = path.join(out3, 'devices/brno1-dock-001/seed/user-data');
    const before = statSync(ud).mtimeMs;
    writeFileSync(path.join(out3, 'devices/brno1-dock-001/bundle/k3s/leftover.yaml'), 'x');
    mkdirSync(path.join(out3, 'devices/old-device-001/seed'), { recursive: true });
    writeFileSync(path.join(out3, 'devices/old-device-001/seed/user-data'), 'old secrets');
    await build(opts(out3));
    expect(statSync(ud).mtimeMs).toBe(before);
    expect(existsSync(path.join(out3, 'devices/brno1-dock-001/bundle/k3s/leftover.yaml'))).toBe(false);
    expect(existsSync(path.join(out3, 'devices/old-device-001'))).toBe(false);
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('build: selection and failures', () => {
  it('--only builds those devices and keeps the rest of a manifest of the same inventory', async () => {
    const out = path.join(tmp, 'out-only');
    await build(opts(out));
    const full = readFileSync(path.join(out, 'manifest.json'), 'utf8');
    const r = await build(opts(out, { only: ['brno1-dock-002'] }));
    expect(r.results.map((x) => x.id)).toEqual(['brno1-dock-002']);
    expect(readFileSync(path.join(out, 'manifest.json'), 'utf8')).toBe(full);
    const fresh = path.join(tmp, 'out-only-fresh');
    const r2 = await build(opts(fresh, { only: ['brno1-dock-002', 'changwon2-press-001'] }));
    expect(r2.manifest.devices.map((d) => d.id)).toEqual(['changwon2-press-001', 'brno1-dock-002']);
    expect(readdirSync(path.join(fresh, 'devices')).sort()).toEqual(['brno1-dock-002', 'changwon2-press-001']);
  }, 120_000);

  it('--only with an unknown id stops with a suggestion and writes nothing', async () => {
    const out = path.join(tmp, 'out-bad-only');
    await expect(build(opts(out, { only: ['brno1-dock-02'] }))).rejects.toThrow(/no device "brno1-dock-02".*did you mean "brno1-dock-002"/);
    expect(existsSync(out)).toBe(false);
  });

  it('a device that fails is reported with its phase; the others complete and the manifest lists them', async () => {
    const out = path.join(tmp, 'out-fail');
    const agent = fleet.active.find((d) => d.id === 'changwon2-press-001')!;
    const r = await build(opts(out, { secrets: fixedSource({ 'changwon2-press-001': { ...fixedSecretsFor(agent), agentToken: undefined } }) }));
    const failed = r.results.filter((x) => x.status === 'failed');
    expect(failed).toEqual([{ id: 'changwon2-press-001', status: 'failed', phase: 'render', message: expect.stringContaining('needs its agent token') }]);
    expect(r.manifest.devices.map((d) => d.id)).not.toContain('changwon2-press-001');
    expect(r.manifest.devices).toHaveLength(13);
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('build --base-image', () => {
  it('writes a disk delta per device of the matching layout, records the base in the manifest, and the image boots the same seed', async () => {
    const fx = buildRaspiFixture(path.join(tmp, 'base'));
    const out = path.join(tmp, 'out-base');
    const r = await build(opts(out, { baseImage: { given: 'base/raspi.img', path: fx.path } }));
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    expect(r.manifest.baseImage).toEqual({ path: 'base/raspi.img', sha256: fx.sha256 });
    expect(Object.keys(r.manifest).slice(0, 5)).toEqual(['format', 'fleet', 'inventorySha256', 'sourceDateEpoch', 'baseImage']);
    for (const d of r.manifest.devices) {
      const dev = fleet.active.find((x) => x.id === d.id)!;
      const delta = d.artifacts.find((a) => a.kind === 'disk-delta');
      if (dev.profile.baseImage.layout === 'raspi-mbr') expect(delta, d.id).toMatchObject({ path: `devices/${d.id}/disk.delta`, secret: true });
      else {
        expect(delta).toBeUndefined();
        expect(r.results.find((x) => x.id === d.id)!.message).toMatch(/no disk delta: profile uefi-gpt expects a GPT base/);
      }
    }
    const img = path.join(tmp, 'ulsan1.img');
    await materializeDevice({ outDir: out, deviceId: 'ulsan1-line1-001', to: img });
    const ud = execFileSync(tool('mtype'), ['-i', `${img}@@${fx.fatOffset}`, '::user-data'], { env: MT_ENV });
    expect(sha256Hex(ud)).toBe(sha256Hex(readFileSync(path.join(out, 'devices/ulsan1-line1-001/seed/user-data'))));

    // a profile that pins its base image refuses another file, before anything is written
    const pinned: Fleet = { ...fleet, active: fleet.active.map((d) => ({ ...d, profile: { ...d.profile, baseImage: { ...d.profile.baseImage, sha256: 'ab'.repeat(32) } } })) };
    const out2 = path.join(tmp, 'out-pinned');
    await expect(build({ ...opts(out2, { baseImage: { given: 'base/raspi.img', path: fx.path } }), fleet: pinned, only: ['ulsan1-line1-001'] })).rejects.toThrow(/pins baseImage\.sha256 abab/);
    expect(existsSync(path.join(out2, 'manifest.json'))).toBe(false);
  }, 180_000);
});

describe.runIf(HAVE_TOOLS)('build: K3s airgap bundle', () => {
  const blobs = { 'k3s-arm64': 'fake k3s binary\n', 'k3s-airgap-images-arm64.tar.zst': 'fake images\n', 'install.sh': '#!/bin/sh\necho fake installer\n' };
  function airgapFleet(pins: Partial<Record<'binary' | 'images' | 'installScript', string>> = {}): { fleet: Fleet; inventory: string } {
    const dir = mkdtempSync(path.join(tmp, 'inv-'));
    mkdirSync(path.join(dir, 'bundles/k3s'), { recursive: true });
    for (const [n, t] of Object.entries(blobs)) writeFileSync(path.join(dir, 'bundles/k3s', n), t);
    const f = structuredClone(fleet);
    f.k3s.install = {
      mode: 'airgap',
      bundle: 'bundles/k3s',
      sha256: { binary: sha256Hex(blobs['k3s-arm64']), images: sha256Hex(blobs['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(blobs['install.sh']), ...pins },
    };
    return { fleet: f, inventory: path.join(dir, 'inventory.yaml') };
  }

  it('verifies the bundle, stages it once and links it into every device bundle, listed in the manifest', async () => {
    const { fleet: f, inventory } = airgapFleet();
    const out = path.join(tmp, 'out-airgap');
    const r = await build(opts(out, { fleet: f, inventoryPath: inventory }));
    expect(r.results.every((x) => x.status === 'ok')).toBe(true);
    for (const d of f.active) {
      for (const [n, t] of Object.entries(blobs)) {
        const p = path.join(out, 'devices', d.id, 'bundle/k3s/airgap', n);
        expect(readFileSync(p, 'utf8')).toBe(t);
        expect(statSync(p).ino).toBe(statSync(path.join(out, 'k3s-airgap', n)).ino);
        expect(r.manifest.devices.find((x) => x.id === d.id)!.artifacts).toContainEqual({
          kind: 'other',
          path: `devices/${d.id}/bundle/k3s/airgap/${n}`,
          sha256: sha256Hex(t),
          bytes: t.length,
          secret: false,
        });
      }
      // the device program checks the same files against the same pins
      const sums = readFileSync(path.join(out, 'devices', d.id, 'bundle/SHA256SUMS'), 'utf8');
      expect(sums).toContain(`${sha256Hex(blobs['k3s-arm64'])}  k3s/airgap/k3s-arm64\n`);
      execFileSync('sha256sum', ['--quiet', '--strict', '-c', 'SHA256SUMS'], { cwd: path.join(out, 'devices', d.id, 'bundle') });
    }
  }, 120_000);

  it('a wrong checksum fails the build with a clear message, before anything is written', async () => {
    const { fleet: f, inventory } = airgapFleet({ images: '0'.repeat(64) });
    const out = path.join(tmp, 'out-airgap-bad');
    const err = await build(opts(out, { fleet: f, inventoryPath: inventory })).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/K3s airgap bundle: .*k3s-airgap-images-arm64\.tar\.zst has sha256 [0-9a-f]{64} but the inventory pins 0{64} \(k3s\.install\.sha256\.images/);
    expect(err.message).toContain('Nothing was written');
    expect(existsSync(path.join(out, 'k3s-airgap'))).toBe(false);
    expect(existsSync(path.join(out, 'devices'))).toBe(false);
    expect(existsSync(path.join(out, 'manifest.json'))).toBe(false);
  });
});

describe.runIf(HAVE_TOOLS)('edgeforge build (CLI, real keystore)', () => {
  it('creates the example keys loudly, builds, signs with the pinned build key, and --json carries no secrets', async () => {
    const keys = path.join(tmp, 'keys');
    const out = path.join(tmp, 'cli-out');
    const r = await runCli(['build', '-i', EXAMPLE, '-o', out, '--keys', keys, '--json', '--only', 'brno1-dock-001,changwon2-press-001'], { env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    expect(r.stderr).toContain('EXAMPLE ADMIN KEY IN USE');
    // the example's tang sites have no saved advertisement: the plaintext window is stated, with the fix
    expect(r.stderr).toMatch(/warning: site kr-south\/changwon-plant-2 \(\d+ device\(s\)\): one-time secrets travel unsealed .*curl -sf http:\/\/tang\.changwon2\.acme\.example\/adv > FILE/);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.devices).toEqual([
      { id: 'changwon2-press-001', status: 'ok', phase: 'done', message: expect.any(String) },
      { id: 'brno1-dock-001', status: 'ok', phase: 'done', message: expect.any(String) },
    ]);
    expect(r.stdout + r.stderr).not.toMatch(/PRIVATE KEY|[0-9a-f]{64}/);
    const v = await verifyBuild(out, undefined, { keysDir: keys });
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.signature.fingerprint).toBe(readFileSync(path.join(keys, 'build/signing-key.fingerprint'), 'utf8').trim());
    // the real bundle runs: the program installs the keystore's host key, which OpenSSH accepts as the pinned one
    const root = path.join(tmp, 'device-root');
    rmSync(root, { recursive: true, force: true });
    mkdirSync(path.join(root, 'var/lib/edgeforge'), { recursive: true });
    execFileSync('cp', ['-a', path.join(out, 'devices/brno1-dock-001/bundle'), path.join(root, 'var/lib/edgeforge/bundle')]);
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nops:x:1000:1000::/home/ops:/bin/bash\n');
    writeFileSync(path.join(root, 'etc/shadow'), 'root:!:19000::::::\nops:!:19000::::::\n');
    writeFileSync(path.join(root, 'stub.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const prog = spawnSync('dash', [path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh')], {
      env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EDGEFORGE_STEPS: 'preflight identity' },
      encoding: 'utf8',
    });
    expect(prog.stderr).toContain('[identity]: ok');
    const pub = execFileSync(tool('ssh-keygen'), ['-y', '-f', path.join(root, 'etc/ssh/ssh_host_ed25519_key')], { encoding: 'utf8' }).trim();
    const pinned = readFileSync(path.join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').trim();
    expect(pinned.startsWith(pub)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(keys, 'devices/brno1-dock-001/public.json'), 'utf8')).sshHostKey.publicKey).toBe(pinned);
    // the agent joins with its own bootstrap token, derived from its own stored identity: the same on a rebuild,
    // and not the server's agent-token
    const agentTok = readFileSync(path.join(out, 'devices/changwon2-press-001/bundle/secrets/k3s-agent-token'), 'utf8');
    expect(agentTok).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}\n$/);
    const again = await runCli(['build', '-i', EXAMPLE, '-o', path.join(tmp, 'cli-out2'), '--keys', keys, '--json', '--only', 'changwon2-press-001,changwon2-server'], {
      env: { SOURCE_DATE_EPOCH: String(EPOCH) },
    });
    expect(again.code).toBe(0);
    expect(readFileSync(path.join(tmp, 'cli-out2/devices/changwon2-press-001/bundle/secrets/k3s-agent-token'), 'utf8')).toBe(agentTok);
    expect(readFileSync(path.join(tmp, 'cli-out2/devices/changwon2-server/bundle/secrets/k3s-agent-token'), 'utf8')).not.toBe(agentTok);
  }, 180_000);

  it('bad usage exits 2 and writes nothing', async () => {
    const out = path.join(tmp, 'cli-bad');
    const r = await runCli(['build', '-i', EXAMPLE, '-o', out, '--keys', path.join(tmp, 'keys'), '--only', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no device "nope"');
    expect(existsSync(path.join(out, 'manifest.json'))).toBe(false);
  }, 60_000);
});
