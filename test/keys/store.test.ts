import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { promises as fs, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { initKeys } from '../../scripts/keys/init.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import type { DeviceIdentity } from '../../scripts/keys/types.ts';
import { gnupgHome, run, tempDir } from './helpers.ts';
import { KeysError } from '../../scripts/util/errors.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/store.test.ts');

const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await fs.rm(d, { recursive: true, force: true });
});
function keysDir(): string {
  const d = tempDir();
  cleanup.push(d);
  return path.join(d, 'keys');
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out.sort();
}

async function snapshot(dir: string): Promise<string> {
  const files = await walk(dir);
  return files.map((f) => `${path.relative(dir, f)} ${statSync(f).mtimeMs} ${statSync(f).mode.toString(8)} ${readFileSync(f, 'utf8').length}`).join('\n');
}

const ids = ['ulsan1-line1-001', 'ulsan1-line1-002', 'ulsan1-line1-003', 'busan-a-001'];
const sites = ['kr-south/ulsan-plant-1', 'kr-south/busan-port'];

describe.runIf(HAVE_TOOLS)('keys init', () => {
  it('refuses to run without admin recipients unless asked for an example admin', async () => {
    const dir = keysDir();
    await expect(initKeys({ dir })).rejects.toThrow(/no admin recipients.*--example-admin/s);
  });

  it('creates the example admin (0600, flagged loudly) and the build key; a second run changes nothing', async () => {
    const dir = keysDir();
    const first = await initKeys({ dir, exampleAdmin: true, fleet: 'acme' });
    expect(first.created).toEqual(
      expect.arrayContaining(['example-admin/admin.private.asc', 'admins/example-admin.asc', 'build/signing-key.asc', 'build/signing-key.private.enc.asc', 'build/signing-key.fingerprint']),
    );
    expect(first.warnings.join('\n')).toMatch(/EXAMPLE ADMIN KEY IN USE/);
    expect(first.buildKeyFingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(statSync(path.join(dir, 'example-admin/admin.private.asc')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'build/signing-key.private.enc.asc')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, 'build/signing-key.fingerprint'), 'utf8').trim()).toBe(first.buildKeyFingerprint);
    const before = await snapshot(dir);
    const second = await initKeys({ dir, exampleAdmin: true, fleet: 'acme' });
    expect(second.created).toEqual([]);
    expect(second.buildKeyFingerprint).toBe(first.buildKeyFingerprint);
    expect(second.warnings.join('\n')).toMatch(/EXAMPLE ADMIN KEY IN USE/); // every run says it again
    expect(await snapshot(dir)).toBe(before);
  });
});

describe.runIf(HAVE_TOOLS)('device and site identities', () => {
  it('generates missing identities, reloads the same values, keeps private material encrypted and 0600', async () => {
    const dir = keysDir();
    await initKeys({ dir, exampleAdmin: true });
    const ks = await openKeyStore({ dir, workers: 2 });
    const first = await ks.ensureDeviceIdentities(ids);
    expect(first.created).toEqual(ids);
    const s1 = await ks.ensureSiteIdentities(sites);
    expect(s1.created).toEqual(sites);
    await ks.close();

    const ks2 = await openKeyStore({ dir, workers: 0 });
    const again = await ks2.ensureDeviceIdentities([...ids].reverse());
    expect(again.created).toEqual([]);
    expect([...again.identities.keys()]).toEqual([...ids].reverse());
    for (const id of ids) expect(again.identities.get(id)).toEqual(first.identities.get(id));
    const s2 = await ks2.ensureSiteIdentities(sites);
    for (const s of sites) expect(s2.identities.get(s)).toEqual(s1.identities.get(s));

    // every device got distinct material
    const all = [...first.identities.values()];
    for (const field of ['k3sToken', 'agentToken', 'luksRecovery'] as const) expect(new Set(all.map((d) => d[field])).size).toBe(all.length);
    expect(new Set(all.map((d) => d.sshHostKey.fingerprint)).size).toBe(all.length);
    expect(new Set(all.map((d) => d.sops.fingerprint)).size).toBe(all.length);

    // private files 0600; nothing private in clear anywhere but the example admin key
    const secrets = all.flatMap((d) => [d.k3sToken, d.agentToken, d.luksRecovery, d.sshHostKey.privateKey.split('\n')[1], d.deployKey.privateKey.split('\n')[1]]);
    for (const f of await walk(dir)) {
      const rel = path.relative(dir, f);
      const text = readFileSync(f, 'utf8');
      if (rel === 'example-admin/admin.private.asc') {
        expect(statSync(f).mode & 0o777).toBe(0o600);
        continue;
      }
      expect(text, rel).not.toMatch(/PRIVATE KEY/);
      for (const s of secrets) expect(text.includes(s), `${rel} holds a secret in clear`).toBe(false);
      if (rel.endsWith('.enc.asc')) {
        expect(text).toMatch(/^-----BEGIN PGP MESSAGE-----/);
        expect(statSync(f).mode & 0o777, rel).toBe(0o600);
      }
    }
    await ks2.close();
  });

  it('device identities work with the real tools: sshd host key, Flux deploy key, gpg-imported SOPS key', async () => {
    const dir = keysDir();
    await initKeys({ dir, exampleAdmin: true });
    const ks = await openKeyStore({ dir, workers: 0 });
    const d = (await ks.ensureDeviceIdentities(['dev-a'])).identities.get('dev-a')!;
    const tmp = tempDir();
    cleanup.push(tmp);
    for (const [name, pair] of [
      ['host', d.sshHostKey],
      ['deploy', d.deployKey],
    ] as const) {
      const f = path.join(tmp, name);
      writeFileSync(f, pair.privateKey, { mode: 0o600 });
      const y = run('ssh-keygen', ['-y', '-f', f]);
      expect(y.status, y.stderr).toBe(0);
      expect(y.stdout.split(' ').slice(0, 2)).toEqual(pair.publicKey.split(' ').slice(0, 2));
      expect(run('ssh-keygen', ['-lf', f]).stdout.split(' ')[1]).toBe(pair.fingerprint);
    }
    const g = gnupgHome();
    try {
      const imp = g.gpg(['--import'], d.sops.privateKeyArmored);
      expect(imp.status, imp.stderr).toBe(0);
      expect(g.gpg(['--list-secret-keys', '--with-colons']).stdout).toContain(d.sops.fingerprint);
    } finally {
      g.done();
    }
    await ks.close();
  });

  it('rotation changes every fingerprint, keeps history, and recover prints every generation', async () => {
    const dir = keysDir();
    await initKeys({ dir, exampleAdmin: true });
    const ks = await openKeyStore({ dir, workers: 0 });
    const before = (await ks.ensureDeviceIdentities(['dev-r'])).identities.get('dev-r')!;
    const site0 = (await ks.ensureSiteIdentities(['eu/plant-9'])).identities.get('eu/plant-9')!;
    const r = await ks.rotateDevice('dev-r', { reason: 'test' });
    expect(r.fromGeneration).toBe(1);
    expect(r.toGeneration).toBe(2);
    expect(r.changed.map((c) => c.what).sort()).toEqual(['deployKey', 'sops', 'sshHostKey']);
    for (const c of r.changed) expect(c.new).not.toBe(c.old);
    expect(r.changed.find((c) => c.what === 'sshHostKey')!.old).toBe(before.sshHostKey.fingerprint);
    expect(r.redeploy.join('\n')).toMatch(/deploy key .* Git host|Git host: delete deploy key/);
    const after = await ks.loadDeviceIdentity('dev-r');
    expect(after.generation).toBe(2);
    expect(after.sshHostKey.fingerprint).not.toBe(before.sshHostKey.fingerprint);
    expect(after.luksRecovery).not.toBe(before.luksRecovery);
    expect(await ks.loadDeviceIdentity('dev-r', 1)).toEqual(before);
    const rec = await ks.recoverDevice('dev-r');
    expect(rec.passphrases).toEqual([
      { generation: 2, passphrase: after.luksRecovery, current: true },
      { generation: 1, passphrase: before.luksRecovery, current: false },
    ]);
    expect(rec.command).toMatch(/cryptsetup open/);

    const rs = await ks.rotateSite('eu/plant-9', { reason: 'revoke dev-x' });
    expect(rs.changed).toEqual([{ what: 'sops', old: site0.sops.fingerprint, new: (await ks.loadSiteIdentity('eu/plant-9')).sops.fingerprint }]);
    expect(rs.changed[0].new).not.toBe(rs.changed[0].old);

    const list = await ks.listIdentities();
    const dev = list.devices.find((d) => d.id === 'dev-r')!;
    expect(dev.generation).toBe(2);
    expect(dev.status).toBe('ok');
    expect(dev.history[0]).toMatchObject({ generation: 1, reason: 'test', fingerprints: { sshHostKey: before.sshHostKey.fingerprint } });
    expect(list.sites.map((s) => s.id)).toEqual(['eu/plant-9']);
    expect(list.build?.fingerprint).toBe(await ks.buildKeyFingerprint());
    expect(JSON.stringify(list)).not.toMatch(/PRIVATE|BEGIN PGP MESSAGE/);
    await expect(ks.rotateDevice('nope')).rejects.toThrow(/no keys for device "nope"/);
    await ks.close();
  });

  it('rejects ids that would escape keys/ and detects a tampered public record', async () => {
    const dir = keysDir();
    await initKeys({ dir, exampleAdmin: true });
    const ks = await openKeyStore({ dir, workers: 0 });
    await expect(ks.ensureDeviceIdentities(['../evil'])).rejects.toThrow(/invalid device id/);
    await expect(ks.ensureDeviceIdentities(['a/b'])).rejects.toThrow(/invalid device id/);
    await expect(ks.ensureSiteIdentities(['justone'])).rejects.toThrow(/invalid site id/);
    await expect(ks.ensureSiteIdentities(['a/../b'])).rejects.toThrow(/invalid site id/);
    await ks.ensureDeviceIdentities(['dev-t']);
    const pub = path.join(dir, 'devices/dev-t/public.json');
    const rec = JSON.parse(readFileSync(pub, 'utf8'));
    rec.sshHostKey.fingerprint = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    writeFileSync(pub, JSON.stringify(rec));
    const ks2 = await openKeyStore({ dir, workers: 0 });
    await expect(ks2.ensureDeviceIdentities(['dev-t'])).rejects.toThrow(/does not match public.json/);
    await ks.close();
    await ks2.close();
  });

  it('two runs generating the same devices at once end up with one identity each (keys/ lock)', async () => {
    const dir = keysDir();
    await initKeys({ dir, exampleAdmin: true });
    const a = await openKeyStore({ dir, workers: 0 });
    const b = await openKeyStore({ dir, workers: 0 });
    const want = ['c-1', 'c-2', 'c-3'];
    const [ra, rb] = await Promise.all([a.ensureDeviceIdentities(want), b.ensureDeviceIdentities(want)]);
    expect(ra.created.length + rb.created.length).toBe(want.length);
    for (const id of want) expect(ra.identities.get(id)).toEqual(rb.identities.get(id));
    await a.close();
    await b.close();
  });
});

describe.runIf(HAVE_TOOLS)('admins', () => {
  it('works with a real gpg admin key: clear error when locked, unlock with EDGEFORGE_ADMIN_KEY, gpg decrypts the store, rewrap after adding an admin', async () => {
    const dir = keysDir();
    const g = gnupgHome();
    const g2 = gnupgHome();
    try {
      const mk = (h: typeof g, uid: string) => {
        const r = h.gpg(['--quick-gen-key', uid, 'future-default', 'default', 'never']);
        expect(r.status, r.stderr).toBe(0);
      };
      mk(g, 'Admin One <one@example.com>');
      mk(g2, 'Admin Two <two@example.com>');
      await fs.mkdir(path.join(dir, 'admins'), { recursive: true });
      writeFileSync(path.join(dir, 'admins/one.asc'), g.gpg(['--armor', '--export', 'one@example.com']).stdout);
      const adminKey = path.join(path.dirname(dir), 'one.private.asc');
      writeFileSync(adminKey, g.gpg(['--armor', '--export-secret-keys', 'one@example.com']).stdout, { mode: 0o600 });

      const init = await initKeys({ dir });
      expect(init.warnings).toEqual([]);
      expect(init.admins.map((a) => a.file)).toEqual(['admins/one.asc']);

      // generating new devices needs only the admins' public keys
      const saved = process.env.EDGEFORGE_ADMIN_KEY;
      delete process.env.EDGEFORGE_ADMIN_KEY;
      const locked = await openKeyStore({ dir, workers: 0 });
      const made = await locked.ensureDeviceIdentities(['dev-1']);
      expect(made.created).toEqual(['dev-1']);
      // reading them back needs an admin private key, and says how to provide one
      const err = await locked.ensureDeviceIdentities(['dev-1']).catch((e) => e);
      expect(err).toBeInstanceOf(KeysError);
      expect(String(err.message)).toMatch(/EDGEFORGE_ADMIN_KEY/);
      await locked.close();
      if (saved !== undefined) process.env.EDGEFORGE_ADMIN_KEY = saved;

      const ks = await openKeyStore({ dir, workers: 0, adminKeyPath: adminKey });
      const d = (await ks.ensureDeviceIdentities(['dev-1'])).identities.get('dev-1')! as DeviceIdentity;
      expect(d.sshHostKey).toEqual(made.identities.get('dev-1')!.sshHostKey);
      // the admin can also read the store with plain gpg, as with SOPS
      const dec = g.gpg(['--decrypt', path.join(dir, 'devices/dev-1/private-g1.enc.asc')]);
      expect(dec.status, dec.stderr).toBe(0);
      expect(JSON.parse(dec.stdout)).toMatchObject({ id: 'dev-1', generation: 1, luksRecovery: d.luksRecovery });
      // manifest signing with the unlocked build key
      const sig = await ks.signDetached(Buffer.from('{}'), { sourceDateEpoch: 1767225600 });
      expect((await ks.verifyDetached(Buffer.from('{}'), sig)).ok).toBe(true);

      // a second admin joins: listed as recipients-changed until rewrap; then their gpg decrypts everything
      writeFileSync(path.join(dir, 'admins/two.asc'), g2.gpg(['--armor', '--export', 'two@example.com']).stdout);
      await ks.refreshAdmins();
      expect((await ks.listIdentities()).devices[0].status).toBe('recipients-changed');
      expect(g2.gpg(['--decrypt', path.join(dir, 'devices/dev-1/private-g1.enc.asc')]).status).not.toBe(0);
      const rw = await ks.rewrapAll();
      expect(rw.files).toBe(2); // build key + dev-1 generation 1
      expect((await ks.listIdentities()).devices[0].status).toBe('ok');
      for (const f of ['devices/dev-1/private-g1.enc.asc', 'build/signing-key.private.enc.asc']) {
        const r = g2.gpg(['--decrypt', path.join(dir, f)]);
        expect(r.status, r.stderr).toBe(0);
      }
      // an admin key that is not a recipient is named as such
      const other = await openKeyStore({ dir, workers: 0, adminKeyPath: path.join(dir, 'admins/two.asc') });
      await expect(other.unlock()).rejects.toThrow(/not an armored OpenPGP private key/);
      await ks.close();
      await other.close();
    } finally {
      g.done();
      g2.done();
    }
  });
});
