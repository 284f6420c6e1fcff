// The OpenPGP keys edgeforge makes must work with the real GnuPG that Flux (sops-gpg) and operators use:
// Debian bookworm's gpg 2.2 rejects v6 / RFC 9580 keys, and refuses keys "created in the future".
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll, afterEach } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { decryptText, encryptText, generateV4Key } from '../../scripts/keys/pgp-ops.mjs';
import { fastGenerateV4Key } from '../../scripts/keys/pgp-v4.mjs';
import { signDetachedWith, verifyDetached } from '../../scripts/keys/signing.ts';
import { DEFAULT_KEY_DATE } from '../../scripts/keys/types.ts';
import { gnupgHome, tempDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/pgp.test.ts');

let homes: ReturnType<typeof gnupgHome>[] = [];
const dirs: string[] = [];
const scratch = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const home = () => {
  const h = gnupgHome();
  homes.push(h);
  return h;
};
afterEach(() => {
  for (const h of homes) h.done();
  homes = [];
});

const colons = (out: string) => out.split('\n').map((l) => l.split(':'));

describe.runIf(HAVE_TOOLS)('SOPS keys (v4, curve25519Legacy) with real gpg', () => {
  it('gpg imports the armored private key: v4 ed25519 + cv25519, back-dated, no passphrase', async () => {
    const k = await generateV4Key({ name: 'edgeforge sops device dev-1', email: 'dev-1@devices.edgeforge.invalid', date: DEFAULT_KEY_DATE });
    expect(k.privateKeyArmored).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    const g = home();
    const imp = g.gpg(['--import'], k.privateKeyArmored);
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stderr).toMatch(/secret keys imported: 1/);
    const list = g.gpg(['--list-secret-keys', '--with-colons', '--fixed-list-mode']);
    const rows = colons(list.stdout);
    const sec = rows.find((r) => r[0] === 'sec')!;
    const ssb = rows.find((r) => r[0] === 'ssb')!;
    expect(sec[3]).toBe('22'); // EdDSA
    expect(sec[16]).toBe('ed25519');
    expect(sec[5]).toBe(String(Date.parse(DEFAULT_KEY_DATE) / 1000)); // creation time: back-dated
    expect(ssb[3]).toBe('18'); // ECDH
    expect(ssb[16]).toBe('cv25519');
    expect(rows.find((r) => r[0] === 'fpr')![9]).toBe(k.fingerprint);
    // no passphrase: gpg can use it without asking (Flux runs gpg non-interactively)
    expect(sec[14]).not.toBe('#');
  });

  it('a device whose clock is far behind (no RTC) still accepts it', async () => {
    const k = await generateV4Key({ name: 'x', email: 'x@devices.edgeforge.invalid', date: DEFAULT_KEY_DATE });
    const g = home();
    // a Raspberry Pi that booted without network time: clock stuck in mid-2021
    const imp = g.gpg(['--faked-system-time', '20210601T000000', '--import'], k.privateKeyArmored);
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stderr).not.toMatch(/in the future/);
    // the contrast: a key created "now" is refused by that same device
    const now = await generateV4Key({ name: 'y', email: 'y@devices.edgeforge.invalid', date: new Date().toISOString() });
    const g2 = home();
    const bad = g2.gpg(['--faked-system-time', '20210601T000000', '--import'], now.privateKeyArmored);
    expect(bad.stderr).toMatch(/in the future|time warp/);
  });

  it('round trip: gpg encrypts to the key (as sops does), gpg with the imported key and openpgp.js both decrypt', async () => {
    const k = await generateV4Key({ name: 'site', email: 'kr-south.ulsan@sites.edgeforge.invalid', date: DEFAULT_KEY_DATE });
    const g = home();
    expect(g.gpg(['--import'], k.privateKeyArmored).status).toBe(0);
    const secret = 'apiVersion: v1\nkind: Secret\nstringData:\n  password: hunter2\n';
    const dir = scratch();
    const plainFile = path.join(dir, 'secret.yaml');
    writeFileSync(plainFile, secret);
    const enc = g.gpg(['--trust-model', 'always', '--armor', '--recipient', k.fingerprint, '--encrypt', '--output', '-', plainFile]);
    expect(enc.status, enc.stderr).toBe(0);
    const dec = g.gpg(['--decrypt'], enc.stdout);
    expect(dec.status, dec.stderr).toBe(0);
    expect(dec.stdout).toBe(secret);
    expect(await decryptText({ armored: enc.stdout, privateKeyArmored: k.privateKeyArmored })).toBe(secret);
  });

  it('files encrypted by edgeforge to several admins decrypt with gpg and any one admin key', async () => {
    const a1 = await generateV4Key({ name: 'admin one', email: 'one@example.com', date: DEFAULT_KEY_DATE });
    const a2 = await generateV4Key({ name: 'admin two', email: 'two@example.com', date: DEFAULT_KEY_DATE });
    const armored = await encryptText({ text: 'private material', recipients: [a1.publicKeyArmored, a2.publicKeyArmored] });
    for (const a of [a1, a2]) {
      const g = home();
      expect(g.gpg(['--import'], a.privateKeyArmored).status).toBe(0);
      const dec = g.gpg(['--decrypt'], armored);
      expect(dec.status, dec.stderr).toBe(0);
      expect(dec.stdout).toBe('private material');
    }
    const stranger = await generateV4Key({ name: 'stranger', email: 's@example.com', date: DEFAULT_KEY_DATE });
    await expect(decryptText({ armored, privateKeyArmored: stranger.privateKeyArmored })).rejects.toThrow();
  });
});

describe.runIf(HAVE_TOOLS)('v4 keys written with node:crypto (pgp-v4.mjs)', () => {
  it('many keys: openpgp.js validates every self-signature and key parameter; gpg imports all, checks all signatures, warns about nothing', async () => {
    const N = 150; // ~1,200 MPIs: several with leading zero bytes, the classic encoding bug
    const keys = Array.from({ length: N }, (_, i) => fastGenerateV4Key({ name: `k${i}`, email: `k${i}@devices.edgeforge.invalid`, date: DEFAULT_KEY_DATE }));
    for (const k of keys) {
      const priv = await openpgp.readPrivateKey({ armoredKey: k.privateKeyArmored });
      expect(priv.getFingerprint().toUpperCase()).toBe(k.fingerprint);
      expect(priv.keyPacket.version).toBe(4);
      await priv.verifyPrimaryKey(); // user ID self-signature valid
      await (priv as unknown as { validate(): Promise<void> }).validate(); // secret parameters match the public ones (untyped in openpgp's d.ts)
      expect((await priv.getEncryptionKey()).getAlgorithmInfo()).toEqual({ algorithm: 'ecdh', curve: 'curve25519Legacy' });
      expect(priv.getCreationTime().toISOString()).toBe(new Date(DEFAULT_KEY_DATE).toISOString());
    }
    const g = home();
    const imp = g.gpg(['--import'], keys.map((k) => k.privateKeyArmored).join('\n'));
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stderr).toMatch(new RegExp(`secret keys imported: ${N}`));
    expect(imp.stderr).not.toMatch(/WARNING|preference for/);
    const check = g.gpg(['--check-signatures', '--with-colons']);
    expect(check.status, check.stderr).toBe(0);
    const sigs = colons(check.stdout).filter((r) => r[0] === 'sig');
    expect(sigs.length).toBe(2 * N); // user ID certification + subkey binding per key
    for (const r of sigs) expect(r[1], r.join(':')).toBe('!'); // "!" = signature checked and good
    // encryption to a few of them with gpg, decrypted by gpg with the imported secret keys
    for (const k of keys.slice(0, 5)) {
      const enc = g.gpg(['--trust-model', 'always', '--armor', '--recipient', k.fingerprint, '--encrypt'], `to ${k.fingerprint}`);
      expect(enc.status, enc.stderr).toBe(0);
      const dec = g.gpg(['--decrypt'], enc.stdout);
      expect(dec.stdout).toBe(`to ${k.fingerprint}`);
      expect(await decryptText({ armored: enc.stdout, privateKeyArmored: k.privateKeyArmored })).toBe(`to ${k.fingerprint}`);
    }
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('build signatures', () => {
  it('gpg --verify accepts a detached signature; tampered data and foreign keys are rejected; signatures are reproducible', async () => {
    const k = await generateV4Key({ name: 'edgeforge build signing key', email: 'build-signing@edgeforge.invalid', date: DEFAULT_KEY_DATE });
    const key = await openpgp.readPrivateKey({ armoredKey: k.privateKeyArmored });
    const data = Buffer.from(JSON.stringify({ format: 'edgeforge-manifest/1', devices: [] }, null, 2) + '\n');
    const when = new Date(1767225600 * 1000);
    const sig = await signDetachedWith(key, data, when);
    expect(sig).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(await signDetachedWith(key, data, when)).toBe(sig); // same inputs, same bytes

    const dir = scratch();
    writeFileSync(path.join(dir, 'manifest.json'), data);
    writeFileSync(path.join(dir, 'manifest.json.asc'), sig);
    const g = home();
    expect(g.gpg(['--import'], k.publicKeyArmored).status).toBe(0);
    const ok = g.gpg(['--status-fd', '1', '--verify', path.join(dir, 'manifest.json.asc'), path.join(dir, 'manifest.json')]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`VALIDSIG ${k.fingerprint} `));

    writeFileSync(path.join(dir, 'manifest.json'), Buffer.concat([data, Buffer.from(' ')]));
    const bad = g.gpg(['--status-fd', '1', '--verify', path.join(dir, 'manifest.json.asc'), path.join(dir, 'manifest.json')]);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/BADSIG/);

    expect((await verifyDetached(data, sig, k.fingerprint, k.publicKeyArmored)).ok).toBe(true);
    expect((await verifyDetached(Buffer.concat([data, Buffer.from(' ')]), sig, k.fingerprint, k.publicKeyArmored)).ok).toBe(false);
    // a forger's key that signs validly is still refused: it is not the pinned one
    const forger = await generateV4Key({ name: 'forger', email: 'f@example.com', date: DEFAULT_KEY_DATE });
    const forged = await signDetachedWith(await openpgp.readPrivateKey({ armoredKey: forger.privateKeyArmored }), data, when);
    const r1 = await verifyDetached(data, forged, k.fingerprint, forger.publicKeyArmored);
    expect(r1.ok).toBe(false);
    expect(r1.error).toMatch(/not the pinned key/);
    const r2 = await verifyDetached(data, forged, k.fingerprint, k.publicKeyArmored);
    expect(r2.ok).toBe(false);
    // a signature time before the key existed is clamped to the key's creation (gpg would reject it)
    const early = await signDetachedWith(key, data, new Date('2019-01-01T00:00:00Z'));
    expect((await verifyDetached(data, early, k.fingerprint, k.publicKeyArmored)).signedAt).toBe(new Date(DEFAULT_KEY_DATE).toISOString());
  });
});
