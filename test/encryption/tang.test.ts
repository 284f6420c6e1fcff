// Sealing against a real tang server: what edgeforge seals offline at build time, `clevis decrypt` opens on
// site while tang answers, and nothing opens it once tang is gone (the stolen device, the stolen SD card).
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { encryptionPlan } from '../../scripts/render/encryption/plan.ts';
import { sealToTang } from '../../scripts/render/encryption/seal.ts';
import { verifyAdvertisement } from '../../scripts/render/encryption/tang.ts';
import { encryptionBundleFiles } from '../../scripts/render/encryption/compose.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { TangServer, sh, tmp, withTang, writeBundle } from './helpers.ts';
const HAVE_TOOLS = requireTools(['clevis', 'cryptsetup', 'curl', 'jose', 'socat', 'tangd', 'tangd-keygen'], 'test/encryption/tang.test.ts');

let fleet: Fleet;
let dir: string;
let tangA: TangServer;
let tangB: TangServer;
const dev = (id: string): ResolvedDevice => fleet.devices.find((d) => d.id === id)!;
const clevisDecrypt = (jwe: string) => spawnSync(tool('clevis'), ['decrypt'], { input: jwe, encoding: 'utf8', timeout: 60_000 });

beforeAll(async () => {
  fleet = await loadInventoryFile(EXAMPLE);
  dir = tmp('tang');
  tangA = new TangServer(path.join(dir, 'a'));
  tangB = new TangServer(path.join(dir, 'b'));
  await Promise.all([tangA.start(), tangB.start()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([tangA?.stop(), tangB?.stop()]);
});

describe.runIf(HAVE_TOOLS)('a JWE sealed offline by edgeforge', () => {
  it('opens with clevis decrypt while tang answers, and not once tang is down', async () => {
    const adv = verifyAdvertisement(tangA.advertisement(), tangA.thumbprint);
    const secret = 'k3s-token: 9f1c...\n\u00e9\u0000binary\u00ff';
    for (const jwe of [sealToTang(Buffer.from(secret), tangA.url, adv), sealToTang(Buffer.from(secret), tangA.url, adv, { seed: Buffer.from('seed') })]) {
      const ok = clevisDecrypt(jwe);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toBe(secret);
    }
    const jwe = sealToTang(Buffer.from(secret), tangA.url, adv);
    const port = tangA.port;
    await tangA.stop();
    try {
      const down = clevisDecrypt(jwe);
      expect(down.status).not.toBe(0);
      expect(down.stdout).toBe('');
      expect(down.stderr).toMatch(/Error communicating with server/);
    } finally {
      await tangA.start(port);
    }
  }, 120_000);

  it('another tang server cannot open it (its key is not the one sealed to)', () => {
    const adv = verifyAdvertisement(tangA.advertisement(), tangA.thumbprint);
    const jwe = sealToTang(Buffer.from('x'), tangA.url, adv);
    const [h, ...rest] = jwe.split('.');
    const hdr = JSON.parse(Buffer.from(h, 'base64url').toString());
    hdr.clevis.tang.url = tangB.url; // point it at B: header changed, and B's key is not the one
    const r = clevisDecrypt([Buffer.from(JSON.stringify(hdr)).toString('base64url'), ...rest].join('.'));
    expect(r.status).not.toBe(0);
  }, 60_000);
});

describe.runIf(HAVE_TOOLS)('sealed one-time secrets on the device (unseal-secrets.sh)', () => {
  function bundleFor(root: string, servers: TangServer[]) {
    const d = withTang(dev('ulsan1-line1-001'), servers);
    const advs = Object.fromEntries(servers.map((s) => [s.url, s.advertisement()]));
    const plan = encryptionPlan(d, advs);
    const secrets = [
      { name: 'k3s-token', bytes: Buffer.from('0123abcd\n'), mode: 0o600 },
      { name: 'luks-recovery', bytes: Buffer.from('7K2QF-AB3CD-EFGH0-JKMNP-QRSTV-WXYZ1-23456-789AB\n'), mode: 0o600 },
      { name: 'ssh_host_ed25519_key', bytes: Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n'), mode: 0o600 },
      // the Flux bootstrap carries the deploy key and the SOPS key: it travels sealed too, as flux/NAME
      { name: 'flux/flux-system.yaml', bytes: Buffer.from('kind: Secret\nstringData: {identity: fake}\n'), mode: 0o600 },
    ];
    const { files, sealed } = encryptionBundleFiles(d, plan, { secrets, sourceDateEpoch: 1767225600 });
    expect(sealed).toBe(true);
    const bundle = writeBundle(root, files);
    expect(readFileSync(path.join(bundle, 'sealed-secrets.jwe'), 'utf8').trim().split('\n')).toHaveLength(servers.length);
    return { bundle, secrets };
  }

  it('unseals with any one server that answers, into RAM, and links bundle/secrets to it; --forget removes it all', async () => {
    const root = path.join(dir, 'root1');
    const { bundle, secrets } = bundleFor(root, [tangA, tangB]);
    const port = tangA.port;
    await tangA.stop(); // the first server is down: the second one does it
    try {
      const r = await sh(`sh ${bundle}/encryption/unseal-secrets.sh`, { EDGEFORGE_ROOT: root });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/could not unseal with tang server http:\/\/127\.0\.0\.1:\d+/);
      expect(r.stderr).toMatch(/unsealed 4 secret file\(s\)/);
    } finally {
      await tangA.start(port);
    }
    const ram = path.join(root, 'run/edgeforge/secrets');
    expect(statSync(ram).mode & 0o777).toBe(0o700);
    for (const s of secrets) {
      const link = s.name.includes('/') ? path.join(bundle, s.name) : path.join(bundle, 'secrets', s.name);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(path.join(ram, s.name));
      expect(readFileSync(link)).toEqual(s.bytes);
      expect(statSync(link).mode & 0o777).toBe(0o600);
    }
    // running again does not need tang (already unsealed from this very file)
    const again = await sh(`sh ${bundle}/encryption/unseal-secrets.sh`, { EDGEFORGE_ROOT: root });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/unsealed/);
    const forget = await sh(`sh ${bundle}/encryption/unseal-secrets.sh --forget`, { EDGEFORGE_ROOT: root });
    expect(forget.status, forget.stderr).toBe(0);
    expect(existsSync(ram)).toBe(false);
    expect(existsSync(path.join(bundle, 'sealed-secrets.jwe'))).toBe(false);
    expect(readdirSync(path.join(bundle, 'secrets'))).toEqual([]);
    expect(readdirSync(path.join(bundle, 'flux'))).toEqual([]);
  }, 120_000);

  it('off-site (no tang answers): fails, says why, leaves no plaintext', async () => {
    const root = path.join(dir, 'root2');
    const { bundle } = bundleFor(root, [tangA]);
    const port = tangA.port;
    await tangA.stop();
    try {
      const r = await sh(`sh ${bundle}/encryption/unseal-secrets.sh`, { EDGEFORGE_ROOT: root });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/cannot unseal this device's secrets: no tang server answered/);
      const ram = path.join(root, 'run/edgeforge/secrets');
      expect(readdirSync(ram)).toEqual([]);
      expect(existsSync(path.join(bundle, 'secrets'))).toBe(false);
    } finally {
      await tangA.start(port);
    }
  }, 120_000);
});
