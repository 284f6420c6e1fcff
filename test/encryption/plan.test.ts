// The encryption plan and the sealing primitives, checked against the real tools where there are some
// (openssl for curve orders, tar for the archive, shellcheck/dash for the composed programs, a real tangd
// advertisement for verification).
import { requireTools, succeeded, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createECDH } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { DATA_VOLUME } from '../../scripts/device/layout.ts';
import { chooseCipher, encryptionPlan, pbkdfMemoryKiB, PBKDF_MEMORY_CAP_KIB, recoveryCommands, unitNameOfMount } from '../../scripts/render/encryption/plan.ts';
import { CURVE_ORDERS, jweHeader, openWithSharedSecret, sealToTang, ustar } from '../../scripts/render/encryption/seal.ts';
import { b64u, jwkThumbprint, unb64u, verifyAdvertisement, type EcJwk } from '../../scripts/render/encryption/tang.ts';
import { encryptionBundleFiles } from '../../scripts/render/encryption/compose.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { TangServer, tmp, withTang } from './helpers.ts';
const HAVE_TOOLS = requireTools(['cryptsetup', 'curl', 'jose', 'openssl', 'shellcheck', 'socat', 'systemd-escape', 'tangd', 'tangd-keygen'], 'test/encryption/plan.test.ts');

let fleet: Fleet;
let dir: string;
let tang: TangServer;
let advText: string;
const dev = (id: string): ResolvedDevice => fleet.devices.find((d) => d.id === id)!;

beforeAll(async () => {
  fleet = await loadInventoryFile(EXAMPLE);
  dir = tmp('plan');
  tang = new TangServer(dir);
  await tang.start();
  advText = tang.advertisement();
}, 30_000);
afterAll(async () => {
  await tang?.stop();
});

describe.runIf(HAVE_TOOLS)('cipher and key derivation per profile', () => {
  it('uses AES-XTS where the CPU has AES instructions and Adiantum where it does not', () => {
    const pi = chooseCipher(dev('ulsan1-line1-001').profile);
    expect(pi).toMatchObject({ cipher: 'xchacha12,aes-adiantum-plain64', keyBits: 256, sectorSize: 4096 });
    expect(pi.why).toMatch(/no AES instructions/);
    expect(chooseCipher(dev('changwon2-server').profile)).toMatchObject({ cipher: 'aes-xts-plain64', keyBits: 512 });
  });

  it('caps argon2id memory for 2 GB devices and scales it down for 1 GB ones', () => {
    expect(pbkdfMemoryKiB(2048)).toBe(262144);
    expect(pbkdfMemoryKiB(4096)).toBe(PBKDF_MEMORY_CAP_KIB);
    expect(pbkdfMemoryKiB(1024)).toBe(131072);
    const p = encryptionPlan(dev('ulsan1-line1-001'));
    expect(p.pbkdf).toEqual({ type: 'argon2id', memoryKiB: 262144, iterations: 4, parallel: 4 });
  });
});

describe.runIf(HAVE_TOOLS)('clevis pin configuration', () => {
  it('binds a single tang server offline, with the advertisement and the pinned thumbprint', () => {
    const d = withTang(dev('ulsan1-line1-001'), [tang]);
    const p = encryptionPlan(d, { [tang.url]: advText });
    expect(p.clevis?.pin).toBe('tang');
    expect(p.clevis?.config).toEqual({ url: tang.url, thp: tang.thumbprint, adv: JSON.parse(advText) });
    expect(p.sealTo.map((s) => s.url)).toEqual([tang.url]);
    expect(p.onlineAdv).toEqual([]);
  });

  it('without a saved advertisement the device fetches it at bind time, still pinned', () => {
    const d = withTang(dev('ulsan1-line1-001'), [tang]);
    const p = encryptionPlan(d);
    expect(p.clevis).toEqual({ pin: 'tang', config: { url: tang.url, thp: tang.thumbprint } });
    expect(p.sealTo).toEqual([]);
    expect(p.onlineAdv).toEqual([tang.url]);
  });

  it('tang+tpm2 with threshold 2 is an sss pin needing both; tpm2 binds PCR 7 on UEFI boards', () => {
    const d = withTang(dev('changwon2-server'), [tang]);
    expect(d.encryption).toMatchObject({ mode: 'tang+tpm2', threshold: 2 });
    const p = encryptionPlan(d, { [tang.url]: advText });
    expect(p.clevis).toEqual({
      pin: 'sss',
      config: { t: 2, pins: { tang: [{ url: tang.url, thp: tang.thumbprint, adv: JSON.parse(advText) }], tpm2: { pcr_bank: 'sha256', pcr_ids: '7' } } },
    });
  });

  it('several tang servers make an sss pin with the inventory threshold; mode none has no pin', () => {
    const d = withTang(dev('ulsan1-line1-001'), [tang, tang], 'tang', 2);
    const p = encryptionPlan(d);
    expect(p.clevis?.pin).toBe('sss');
    expect((p.clevis?.config as { t: number }).t).toBe(2);
    expect(encryptionPlan(dev('brno1-dock-001')).clevis).toBeUndefined();
    expect(encryptionBundleFiles(dev('brno1-dock-001'), encryptionPlan(dev('brno1-dock-001'))).files).toEqual([]);
  });
});

describe.runIf(HAVE_TOOLS)('tang advertisement verification', () => {
  it('accepts the advertisement signed by the pinned key (S256 or the older S1 thumbprint)', () => {
    const a = verifyAdvertisement(advText, tang.thumbprint);
    expect(a.signingThumbprints).toEqual([tang.thumbprint]);
    expect(a.exchangeKey.alg).toBe('ECMR');
    const sig = a.jwks.keys.find((k) => k.key_ops?.includes('verify'))!;
    expect(verifyAdvertisement(advText, jwkThumbprint(sig, 'S1')).exchangeKey).toEqual(a.exchangeKey);
    // our thumbprint agrees with jose's
    const jose = succeeded(spawnSync(tool('jose'), ['jwk', 'thp', '-i-', '-a', 'S256'], { input: JSON.stringify(a.exchangeKey), encoding: 'utf8' }), 'jose jwk thp').stdout.trim();
    expect(jwkThumbprint(a.exchangeKey)).toBe(jose);
  });

  it('refuses another pinned thumbprint, a tampered payload and a non-advertisement', () => {
    expect(() => verifyAdvertisement(advText, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).toThrow(/not by the pinned thumbprint/);
    const jws = JSON.parse(advText) as { payload: string };
    const payload = JSON.parse(unb64u(jws.payload).toString()) as { keys: EcJwk[] };
    // an attacker swaps the exchange key for their own
    const mine = createECDH('secp521r1');
    mine.generateKeys();
    const pub = mine.getPublicKey();
    const ex = payload.keys.find((k) => k.alg === 'ECMR')!;
    ex.x = b64u(pub.subarray(1, 67));
    ex.y = b64u(pub.subarray(67));
    const forged = JSON.stringify({ ...jws, payload: b64u(JSON.stringify(payload)) });
    expect(() => verifyAdvertisement(forged, tang.thumbprint)).toThrow(/did not sign it/);
    expect(() => verifyAdvertisement('<html>', tang.thumbprint)).toThrow(/not JSON/);
  });

  it('the plan refuses an advertisement that does not match the pinned thumbprint', () => {
    const d = withTang(dev('ulsan1-line1-001'), [tang]);
    d.encryption.tang[0].thumbprint = 'q8GZ1cC1jY2V3yJ2uD4n0xVwJbq8yP0sTj6m0Zl3fRk';
    expect(() => encryptionPlan(d, { [tang.url]: advText })).toThrow(/ulsan1-line1-001.*not by the pinned thumbprint/);
  });
});

describe.runIf(HAVE_TOOLS)('sealing', () => {
  it('uses the exact group orders of the NIST curves (as OpenSSL has them)', () => {
    for (const [crv, name] of [
      ['P-256', 'prime256v1'],
      ['P-384', 'secp384r1'],
      ['P-521', 'secp521r1'],
    ]) {
      const text = succeeded(spawnSync(tool('openssl'), ['ecparam', '-name', name, '-param_enc', 'explicit', '-text', '-noout'], { encoding: 'utf8' }), 'openssl ecparam').stdout;
      const order = text.split('Order:')[1].split('Cofactor')[0].replace(/[\s:]/g, '');
      expect(BigInt('0x' + order), crv).toBe(CURVE_ORDERS[crv]);
    }
  });

  it("writes clevis's JWE layout, which opens with the shared secret tang's private key gives", () => {
    const adv = verifyAdvertisement(advText, tang.thumbprint);
    const jwe = sealToTang(Buffer.from('one-time secret'), tang.url, adv);
    const parts = jwe.split('.');
    expect(parts).toHaveLength(5);
    expect(parts[1]).toBe(''); // ECDH-ES direct: no encrypted key
    const h = jweHeader(jwe) as { alg: string; enc: string; kid: string; epk: EcJwk; clevis: { pin: string; tang: { url: string; adv: unknown } } };
    expect(h).toMatchObject({ alg: 'ECDH-ES', enc: 'A256GCM', clevis: { pin: 'tang', tang: { url: tang.url, adv: adv.jwks } } });
    expect(h.kid).toBe(jwkThumbprint(adv.exchangeKey));
    // independently of clevis: Z = server private key x epk
    const srv = createECDH('secp521r1');
    srv.setPrivateKey(unb64u(tang.exchangeKey.d));
    const z = srv.computeSecret(Buffer.concat([Buffer.from([4]), unb64u(h.epk.x), unb64u(h.epk.y)]));
    expect(openWithSharedSecret(jwe, z).toString()).toBe('one-time secret');
    // a changed header (say, another tang URL) breaks the authentication tag
    const other = b64u(JSON.stringify({ ...h, clevis: { pin: 'tang', tang: { url: 'http://evil.example', adv: adv.jwks } } }));
    expect(() => openWithSharedSecret([other, ...parts.slice(1)].join('.'), z)).toThrow();
  });

  it('is deterministic with a seed (reproducible builds) and random without', () => {
    const adv = verifyAdvertisement(advText, tang.thumbprint);
    const seed = Buffer.from('build-secret');
    const a = sealToTang(Buffer.from('s1'), tang.url, adv, { seed });
    expect(sealToTang(Buffer.from('s1'), tang.url, adv, { seed })).toBe(a);
    const b = sealToTang(Buffer.from('s2'), tang.url, adv, { seed });
    expect((jweHeader(b).epk as EcJwk).x).not.toBe((jweHeader(a).epk as EcJwk).x);
    expect(b.split('.')[2]).not.toBe(a.split('.')[2]); // IV
    expect(sealToTang(Buffer.from('s1'), tang.url, adv)).not.toBe(sealToTang(Buffer.from('s1'), tang.url, adv));
  });

  it('packs the secrets as a ustar archive tar reads back byte for byte', () => {
    const files = [
      { name: 'k3s-token', bytes: Buffer.from('abc\n'), mode: 0o600 },
      { name: 'luks-recovery', bytes: Buffer.from('7K2QF-AAAAA\n'), mode: 0o600 },
      { name: 'big', bytes: Buffer.alloc(1500, 7), mode: 0o640 },
    ];
    const tar = ustar(files, 1767225600);
    expect(tar.length % 512).toBe(0);
    const out = path.join(dir, 'untar');
    mkdirSync(out);
    writeFileSync(path.join(dir, 's.tar'), tar);
    const list = spawnSync('tar', ['-tvf', path.join(dir, 's.tar')], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/-rw------- root\/root +4 2026-01-01 00:00 k3s-token/);
    expect(spawnSync('tar', ['-xf', path.join(dir, 's.tar'), '-C', out]).status).toBe(0);
    for (const f of files) expect(readFileSync(path.join(out, f.name))).toEqual(f.bytes);
    for (const bad of ['../x', '/etc/passwd', 'a/b/c', '.hidden', 'flux/../x', '']) {
      expect(() => ustar([{ name: bad, bytes: Buffer.alloc(0), mode: 0o600 }], 0), bad).toThrow(/plain file name/);
    }
    const sub = ustar([{ name: 'flux/flux-system.yaml', bytes: Buffer.from('x'), mode: 0o600 }], 0);
    writeFileSync(path.join(dir, 'sub.tar'), sub);
    expect(spawnSync('tar', ['-tf', path.join(dir, 'sub.tar')], { encoding: 'utf8' }).stdout).toBe('flux/flux-system.yaml\n');
  });
});

describe.runIf(HAVE_TOOLS)('the composed programs', () => {
  it('pass shellcheck and dash -n, and carry the plan', () => {
    const d = withTang(dev('changwon2-server'), [tang]);
    const plan = encryptionPlan(d, { [tang.url]: advText });
    const { files, sealed } = encryptionBundleFiles(d, plan, { secrets: [{ name: 'luks-recovery', bytes: Buffer.from('X'), mode: 0o600 }], sourceDateEpoch: 1, sealSeed: Buffer.from('s') });
    expect(sealed).toBe(true);
    const names = files.map((f) => f.path).sort();
    expect(names).toEqual([
      'bundle/encryption/clevis-config.json',
      'bundle/encryption/edgeforge-data-unlock.service',
      'bundle/encryption/edgeforge-unlock-data',
      'bundle/encryption/encrypt-data-volume.sh',
      'bundle/encryption/k3s-data-volume.conf',
      'bundle/encryption/unseal-secrets.sh',
      'bundle/sealed-secrets.jwe',
    ]);
    expect(files.find((f) => f.path === 'bundle/sealed-secrets.jwe')).toMatchObject({ secret: true, mode: 0o600 });
    for (const name of ['encrypt-data-volume.sh', 'unseal-secrets.sh', 'edgeforge-unlock-data']) {
      const p = path.join(dir, name);
      writeFileSync(p, files.find((f) => f.path === `bundle/encryption/${name}`)!.bytes);
      const sc = spawnSync(tool('shellcheck'), ['-s', 'sh', p], { encoding: 'utf8' });
      expect(sc.status, `${name}: ${sc.stdout}`).toBe(0);
      expect(spawnSync('dash', ['-n', p]).status).toBe(0);
    }
    const prog = readFileSync(path.join(dir, 'encrypt-data-volume.sh'), 'utf8');
    expect(prog).toContain("EDV_CIPHER='aes-xts-plain64'");
    expect(prog).toContain("EDV_PBKDF_MEMORY='262144'");
    expect(prog).toContain("EDV_PIN='sss'");
    expect(JSON.parse(files.find((f) => f.path.endsWith('clevis-config.json'))!.bytes.toString())).toEqual(plan.clevis!.config);
    // same input -> same bytes (reproducible builds)
    const again = encryptionBundleFiles(d, plan, { secrets: [{ name: 'luks-recovery', bytes: Buffer.from('X'), mode: 0o600 }], sourceDateEpoch: 1, sealSeed: Buffer.from('s') });
    expect(again.files.map((f) => Buffer.from(f.bytes).toString('hex'))).toEqual(files.map((f) => Buffer.from(f.bytes).toString('hex')));
  });
});

describe.runIf(HAVE_TOOLS)('recovery by hand', () => {
  it('names the volume by its LUKS2 label and the mount units as systemd does', () => {
    for (const p of [...DATA_VOLUME.binds.map((b) => b.path), '/var/lib/edgeforge-data']) {
      expect(unitNameOfMount(p)).toBe(succeeded(spawnSync(tool('systemd-escape'), ['--path', '--suffix=mount', p], { encoding: 'utf8' }), 'systemd-escape').stdout.trim());
    }
    const cmds = recoveryCommands(dev('changwon2-press-001'));
    expect(cmds).toContain('cryptsetup open /dev/disk/by-label/edgeforge-data edgeforge-data');
    expect(cmds).toContain('systemctl start var-lib-rancher.mount var-lib-edgeforge-secrets.mount k3s-agent');
  });
});
