// The keys and verify commands, run through the CLI's own option parser (scripts/cli/command.ts).
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseCommand, type Command } from '../../scripts/cli/command.ts';
import { UsageError, UserError } from '../../scripts/util/errors.ts';
import { keysInit } from '../../scripts/cli/commands/keys-init.ts';
import { keysList } from '../../scripts/cli/commands/keys-list.ts';
import { keysRecover } from '../../scripts/cli/commands/keys-recover.ts';
import { keysRewrap } from '../../scripts/cli/commands/keys-rewrap.ts';
import { keysRotate } from '../../scripts/cli/commands/keys-rotate.ts';
import { verify } from '../../scripts/cli/commands/verify.ts';
import { checkAdminPins } from '../../scripts/keys/admins.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { fastGenerateV4Key } from '../../scripts/keys/pgp-v4.mjs';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { tempDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/cli.test.ts');

const root = tempDir();
afterAll(() => fs.rm(root, { recursive: true, force: true }));
const keys = path.join(root, 'keys');
const inventory = path.resolve('inventory/example.yaml');

async function cli(cmd: Command, argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false, env: process.env, cwd: root };
  const code = await cmd.run!(parseCommand(cmd, argv, io));
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe.runIf(HAVE_TOOLS)('keys commands', () => {
  it('init without admins says what to do; with --example-admin makes the inventory’s keys; again changes nothing', async () => {
    await expect(cli(keysInit, ['--keys', keys, '-i', inventory])).rejects.toThrow(UserError);
    await expect(cli(keysInit, ['--keys', keys, '-i', inventory])).rejects.toThrow(/--example-admin/);
    const first = await cli(keysInit, ['--keys', keys, '-i', inventory, '--example-admin', '--json']);
    expect(first.code).toBe(0);
    expect(first.err).toMatch(/EXAMPLE ADMIN KEY IN USE/);
    const doc = JSON.parse(first.out);
    expect(doc.devicesCreated).toBeGreaterThan(0);
    expect(doc.sitesCreated.length).toBeGreaterThan(0);
    expect(doc.buildKeyFingerprint).toMatch(/^[0-9A-F]{40}$/);
    const again = JSON.parse((await cli(keysInit, ['--keys', keys, '-i', inventory, '--json'])).out);
    expect(again).toMatchObject({ created: [], devicesCreated: 0, sitesCreated: [] });
  });

  it('list shows identities with inventory status and no secrets; rotate reports changes; recover prints passphrases', async () => {
    const list = await cli(keysList, ['--keys', keys, '-i', inventory, '--json']);
    const doc = JSON.parse(list.out);
    expect(doc.devices.length).toBeGreaterThan(0);
    expect(doc.devices[0]).toMatchObject({ generation: 1, status: 'ok', inventory: 'active' });
    expect(doc.missing).toEqual([]);
    expect(list.out).not.toMatch(/PRIVATE|PGP MESSAGE/);
    const id = doc.devices[0].id as string;

    await expect(cli(keysRotate, ['--keys', keys])).rejects.toThrow(UsageError);
    await expect(cli(keysRotate, ['--keys', keys, '--device', id, '--site', 'a/b'])).rejects.toThrow(UsageError);
    await expect(cli(keysRotate, ['--keys', keys, '--device', 'no-such-device'])).rejects.toThrow(/no keys for device/);
    const rot = await cli(keysRotate, ['--keys', keys, '--device', id, '--json']);
    const r = JSON.parse(rot.out);
    expect(r).toMatchObject({ kind: 'device', id, fromGeneration: 1, toGeneration: 2 });
    expect(rot.out).not.toMatch(/PRIVATE/);

    const ks = await openKeyStore({ dir: keys, workers: 0 });
    const [cur, old] = [await ks.loadDeviceIdentity(id), await ks.loadDeviceIdentity(id, 1)];
    await ks.close();
    const rec = await cli(keysRecover, ['--keys', keys, id]);
    expect(rec.out).toContain(`generation 2 (current): ${cur.luksRecovery}`);
    expect(rec.out).toContain(`generation 1 (before a rotation): ${old.luksRecovery}`);
    expect(() => parseCommand(keysRecover, ['--json', id], { out() {}, err() {}, isTTY: false, env: {}, cwd: root })).toThrow(UsageError);

    // a second admin joins: rewrap re-encrypts everything (both generations of the rotated device too)
    const extra = fastGenerateV4Key({ name: 'Second Admin', email: 'second@acme.example', date: '2020-01-01T00:00:00Z' });
    writeFileSync(path.join(keys, 'admins/second.asc'), extra.publicKeyArmored);
    expect(JSON.parse((await cli(keysList, ['--keys', keys, '-i', inventory, '--json'])).out).devices[0].status).toBe('recipients-changed');
    const rw = JSON.parse((await cli(keysRewrap, ['--keys', keys, '--json'])).out);
    expect(rw.files).toBe(1 + doc.devices.length + 1 + doc.sites.length); // build key + each device + the rotated generation + sites
    expect(rw.admins.map((a: { file: string }) => a.file)).toEqual(['admins/example-admin.asc', 'admins/second.asc']);
    const after = JSON.parse((await cli(keysList, ['--keys', keys, '-i', inventory, '--json'])).out);
    expect(after.devices.every((d: { status: string }) => d.status === 'ok')).toBe(true);
    const second = await openKeyStore({ dir: keys, workers: 0, adminKeyPath: path.join(root, 'second.asc') });
    writeFileSync(path.join(root, 'second.asc'), extra.privateKeyArmored, { mode: 0o600 });
    expect((await second.loadDeviceIdentity(id, 1)).luksRecovery).toBe(old.luksRecovery);
    await second.close();

    const site = doc.sites[0].id as string;
    const rs = JSON.parse((await cli(keysRotate, ['--keys', keys, '--site', site, '--json'])).out);
    expect(rs).toMatchObject({ kind: 'site', id: site, toGeneration: 2 });
  });

  it('admin pins: a pinned fingerprint missing from keys/admins/ is refused before anything is written', async () => {
    const dir = path.join(root, 'pinned-keys');
    await fs.mkdir(path.join(dir, 'admins'), { recursive: true });
    const ops = fastGenerateV4Key({ name: 'ACME Fleet Operations', email: 'fleet-ops@acme.example', date: '2020-01-01T00:00:00Z' });
    writeFileSync(path.join(dir, 'admins/ops.asc'), ops.publicKeyArmored);
    const text = (await fs.readFile(inventory, 'utf8')).replace(/(admins:\n  - name: ACME Fleet Operations\n    email: fleet-ops@acme.example\n)/, `$1    fingerprint: ${'AB'.repeat(20)}\n`);
    expect(text).toContain(`fingerprint: ${'AB'.repeat(20)}`);
    const inv = path.join(root, 'pinned.yaml');
    writeFileSync(inv, text);
    await expect(cli(keysInit, ['--keys', dir, '-i', inv])).rejects.toThrow(/pinned to ABAB.*no key in keys\/admins/s);
    expect(await fs.readdir(dir)).toEqual(['admins']); // nothing written
    // the right pin passes, and the init then makes the build key and the fleet's keys
    writeFileSync(inv, text.replace('AB'.repeat(20), ops.fingerprint));
    const ok = await cli(keysInit, ['--keys', dir, '-i', inv, '--layout-only', '--json']);
    expect(JSON.parse(ok.out).admins).toEqual([{ file: 'admins/ops.asc', fingerprints: [ops.fingerprint], example: false }]);
    expect(ok.err).not.toMatch(/warning/);

    const recips = [{ file: 'admins/ops.asc', fingerprints: [ops.fingerprint], userIds: ['ACME Fleet Operations <fleet-ops@acme.example>'], example: false }];
    expect(checkAdminPins(recips, [{ name: 'Ops', email: 'fleet-ops@acme.example' }])).toEqual({ errors: [], warnings: [] });
    expect(checkAdminPins(recips, [{ name: 'Other', email: 'other@acme.example' }]).warnings.join('\n')).toMatch(/Other <other@acme.example> has no key[\s\S]*ops.asc .* does not name/);
  });

  it('verify: exit 0 for a good build, 1 for a tampered one, 2 when nothing is pinned', async () => {
    const out = path.join(root, 'out');
    await fs.mkdir(path.join(out, 'devices/d1'), { recursive: true });
    const art = Buffer.from('hello');
    writeFileSync(path.join(out, 'devices/d1/meta-data'), art);
    const manifest = Buffer.from(
      JSON.stringify({
        format: 'edgeforge-manifest/1',
        fleet: 'f',
        inventorySha256: sha256Hex(Buffer.from('inventory')),
        sourceDateEpoch: 0,
        devices: [{ id: 'd1', region: 'r', site: 's', profile: 'p', artifacts: [{ kind: 'meta-data', path: 'devices/d1/meta-data', sha256: sha256Hex(art), bytes: 5, secret: false }] }],
      }),
    );
    writeFileSync(path.join(out, 'manifest.json'), manifest);
    const ks = await openKeyStore({ dir: keys, workers: 0 });
    writeFileSync(path.join(out, 'manifest.json.asc'), await ks.signDetached(manifest));
    await ks.close();
    const ok = await cli(verify, ['--keys', keys, out]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/verified: OK/);
    writeFileSync(path.join(out, 'devices/d1/meta-data'), 'jello');
    const bad = await cli(verify, ['--keys', keys, out, '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out).problems[0]).toMatchObject({ device: 'd1', path: 'devices/d1/meta-data' });
    await expect(cli(verify, ['--keys', path.join(root, 'none'), out])).rejects.toThrow(/no pinned build key fingerprint/);
    await expect(cli(verify, ['--keys', keys, path.join(root, 'missing')])).rejects.toThrow(/not a directory/);
  });
});
