// `edgeforge os bundle` and `os publish` with the real tools: rauc makes and verifies the bundle (against the
// fleet's OS-update certificate, and refuses it against another), unsquashfs and e2fsck read the root image
// back, openssl checks the ring pointers' signatures; the private key is never in keys/ in clear.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers.ts';
import { buildGptFixture, buildRaspiFixture } from '../disk/fixtures.ts';
import { cleanup, tmpDir } from '../disk/helpers.ts';
import { osFleetInventory } from '../../scripts/testkit/os-fleet.ts';
import { parse } from 'yaml';

const HAVE_TOOLS = requireTools(['rauc', 'mksquashfs', 'unsquashfs', 'openssl', 'e2fsck', 'resize2fs', 'debugfs', 'mke2fs', 'mkfs.vfat', 'mcopy', 'sfdisk'], 'test/os/bundle.test.ts');

let dir: string;
let inv: string;
let keys: string;
const env = { SOURCE_DATE_EPOCH: '1767225600' };

function walk(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
}

beforeAll(async () => {
  dir = tmpDir('os-bundle');
  inv = path.join(dir, 'fleet.yaml');
  keys = path.join(dir, 'keys');
  writeFileSync(inv, osFleetInventory({ piSite: true }));
  const k = await runCli(['keys', 'init', '--example-admin', '--keys', keys, '-i', inv]);
  expect(k.code, k.stderr).toBe(0);
});
afterAll(cleanup);

describe.runIf(HAVE_TOOLS)('edgeforge os bundle / os publish', () => {
  let uefiSnippet: Record<string, Record<string, { file: string; sha256: string; baseImageSha256: string }>>;
  let piSnippet: typeof uefiSnippet;

  it('bundles a UEFI base: signed with a new OS-update key kept encrypted to the admins, the root shrunk to its content', async () => {
    const fx = buildGptFixture(path.join(dir, 'uefi'));
    const r = await runCli(['os', 'bundle', '-i', inv, '--keys', keys, '--base-image', fx.path, '--version', '2026.12.1', '--to', path.join(dir, 'os')], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("made the fleet's OS-update key");
    uefiSnippet = parse(r.stdout.replace(/^#.*\n/, ''));
    const entry = uefiSnippet['2026.12.1']['uefi-gpt'];
    expect(entry.baseImageSha256).toBe(fx.sha256);
    const bundle = path.join(dir, entry.file);
    expect(entry.file).toBe('os/edgeforge-os-2026.12.1-uefi-gpt.raucb');
    const cert = path.join(keys, 'os-update/signing-cert.pem');
    const info = execFileSync(tool('rauc'), ['info', `--keyring=${cert}`, bundle], { encoding: 'utf8', stdio: 'pipe' });
    expect(info).toContain("Compatible: \t'edgeforge/acme/uefi-gpt'");
    expect(info).toContain("Version:    \t'2026.12.1'");
    expect(info).toContain('Bundle Format: \tverity');
    expect(info).toMatch(/\[rootfs\][\s\S]*Filename:\s+rootfs\.ext4/);
    // another key's certificate does not verify it
    const other = path.join(dir, 'other.pem');
    execFileSync(tool('openssl'), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'other.key'), '-out', other, '-subj', '/CN=other', '-days', '3'], { stdio: 'pipe' });
    const bad = spawnSync(tool('rauc'), ['info', `--keyring=${other}`, bundle], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/signature verification failed|unable to get local issuer/i);
    // the root image: the base's root, checked clean, shrunk below the partition's 8 MiB
    const out = path.join(dir, 'unsq');
    execFileSync(tool('unsquashfs'), ['-d', out, bundle], { stdio: 'pipe' });
    const rootfs = path.join(out, 'rootfs.ext4');
    expect(statSync(rootfs).size).toBeLessThan(fx.rootSize);
    execFileSync(tool('e2fsck'), ['-fn', rootfs], { stdio: 'pipe' });
    expect(execFileSync(tool('debugfs'), ['-R', 'cat /etc/hostname', rootfs], { encoding: 'utf8', stdio: 'pipe' })).toBe('ubuntu\n');
    expect(readFileSync(path.join(out, 'manifest.raucm'), 'utf8')).toContain(`description=edgeforge OS 2026.12.1 (uefi-gpt) from base image ${fx.sha256}`);
    // the private key: OpenPGP-encrypted at rest, nowhere in clear
    expect(readFileSync(path.join(keys, 'os-update/signing-key.private.enc.asc'), 'utf8')).toMatch(/^-----BEGIN PGP MESSAGE-----/);
    for (const f of walk(keys)) expect(readFileSync(f, 'utf8'), f).not.toMatch(/BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY/);
    expect(existsSync(path.join(dir, 'os', '.tmp'))).toBe(false);
  });

  it('bundles a Raspberry Pi base with its boot partition, with the same key', async () => {
    const certBefore = readFileSync(path.join(keys, 'os-update/signing-cert.pem'), 'utf8');
    const fx = buildRaspiFixture(path.join(dir, 'raspi'));
    const r = await runCli(['os', 'bundle', '-i', inv, '--keys', keys, '--base-image', fx.path, '--version', '2026.12.1', '--to', path.join(dir, 'os')], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("made the fleet's OS-update key");
    expect(readFileSync(path.join(keys, 'os-update/signing-cert.pem'), 'utf8')).toBe(certBefore);
    piSnippet = parse(r.stdout.replace(/^#.*\n/, ''));
    const bundle = path.join(dir, piSnippet['2026.12.1']['raspi-mbr'].file);
    const info = execFileSync(tool('rauc'), ['info', `--keyring=${path.join(keys, 'os-update/signing-cert.pem')}`, bundle], { encoding: 'utf8', stdio: 'pipe' });
    expect(info).toContain("Compatible: \t'edgeforge/acme/raspi-mbr'");
    expect(info).toMatch(/\[boot\][\s\S]*Filename:\s+boot\.vfat/);
    expect(info).toMatch(/Size:\s+41943040/); // boot.vfat: the base's whole 40 MiB boot partition
  });

  it("publishes every ring's bundle and its signed pointer; the same inventory gives the same bytes", async () => {
    const releases = { '2026.12.1': { ...uefiSnippet['2026.12.1'], ...piSnippet['2026.12.1'] } };
    writeFileSync(inv, osFleetInventory({ piSite: true, os: { version: '2026.12.1', releases } }));
    const v = await runCli(['validate', '-i', inv]);
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const pub = path.join(dir, 'pub');
    const r = await runCli(['os', 'publish', '-i', inv, '--keys', keys, '--to', pub], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('canary 2026.12.1  uefi-gpt');
    expect(r.stdout).toContain('stable 2026.12.1  raspi-mbr, uefi-gpt');
    const stable = readFileSync(path.join(pub, 'stable.ring'), 'utf8');
    expect(stable).toBe(
      [
        'format=edgeforge-os-ring/1',
        'fleet=acme',
        'ring=stable',
        'version=2026.12.1',
        'issued=1767225600',
        'bundle.raspi-mbr=bundles/edgeforge-os-2026.12.1-raspi-mbr.raucb',
        `sha256.raspi-mbr=${releases['2026.12.1']['raspi-mbr'].sha256}`,
        `bytes.raspi-mbr=${statSync(path.join(dir, releases['2026.12.1']['raspi-mbr'].file)).size}`,
        'bundle.uefi-gpt=bundles/edgeforge-os-2026.12.1-uefi-gpt.raucb',
        `sha256.uefi-gpt=${releases['2026.12.1']['uefi-gpt'].sha256}`,
        `bytes.uefi-gpt=${statSync(path.join(dir, releases['2026.12.1']['uefi-gpt'].file)).size}`,
        '',
      ].join('\n'),
    );
    // only the canary site's layout in the canary pointer
    expect(readFileSync(path.join(pub, 'canary.ring'), 'utf8')).not.toContain('raspi-mbr');
    const cert = path.join(keys, 'os-update/signing-cert.pem');
    const verify = (content: string) =>
      spawnSync(
        tool('openssl'),
        ['cms', '-verify', '-binary', '-inform', 'DER', '-in', path.join(pub, 'stable.ring.cms'), '-content', content, '-CAfile', cert, '-purpose', 'any', '-out', '/dev/null'],
        { encoding: 'utf8' },
      );
    expect(verify(path.join(pub, 'stable.ring')).status).toBe(0);
    writeFileSync(path.join(dir, 'forged.ring'), stable.replace('version=2026.12.1', 'version=2020.01.1'));
    expect(verify(path.join(dir, 'forged.ring')).status).not.toBe(0);
    // the bundle is the same file (a hard link on one filesystem)
    expect(statSync(path.join(pub, 'bundles/edgeforge-os-2026.12.1-uefi-gpt.raucb')).ino).toBe(statSync(path.join(dir, 'os/edgeforge-os-2026.12.1-uefi-gpt.raucb')).ino);
    const sig = readFileSync(path.join(pub, 'stable.ring.cms'));
    const again = await runCli(['os', 'publish', '-i', inv, '--keys', keys, '--to', pub], { env });
    expect(again.code).toBe(0);
    expect(readFileSync(path.join(pub, 'stable.ring.cms')).equals(sig)).toBe(true);
    expect(readdirSync(pub).sort()).toEqual(['bundles', 'canary.ring', 'canary.ring.cms', 'stable.ring', 'stable.ring.cms']);
  });

  it('refuses to publish a bundle that is not the one the inventory pins, and publishes nothing', async () => {
    const good = readFileSync(inv, 'utf8');
    const sha = parse(good).os.releases['2026.12.1']['uefi-gpt'].sha256 as string;
    writeFileSync(inv, good.replace(sha, 'f'.repeat(64)));
    const pub = path.join(dir, 'pub-bad');
    const r = await runCli(['os', 'publish', '-i', inv, '--keys', keys, '--to', pub], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`has sha256 ${sha}, the inventory pins ${'f'.repeat(64)}`);
    expect(existsSync(pub)).toBe(false);
    writeFileSync(inv, good);
  });
});

describe('os: in the inventory', () => {
  it("refuses a ring release without a bundle for its devices' layout, and a device without a data volume", async () => {
    const d = tmpDir('os-validate');
    const f = path.join(d, 'fleet.yaml');
    const sha = 'a'.repeat(64);
    let text = osFleetInventory({ piSite: true, os: { version: '1.0', canaryVersion: '2.0', releases: { '1.0': { 'uefi-gpt': { file: 'x.raucb', sha256: sha, baseImageSha256: sha } } } } });
    text = text.replace(/(\n\s+)- id: store-c-001/, '$1- id: store-c-001$1  encryption: { mode: none }');
    writeFileSync(f, text);
    const r = await runCli(['validate', '-i', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('release "2.0" is not under os.releases');
    expect(r.stderr).toContain('the stable ring (os.version) has devices on the raspi-mbr layout, but release 1.0 has no raspi-mbr bundle');
    expect(r.stderr).toMatch(/OS updates \(os:\) replace the root filesystem, and store-c-001 at eu\/store-c has no data volume/);
    mkdirSync(d, { recursive: true });
    rmSync(d, { recursive: true, force: true });
  });
});
