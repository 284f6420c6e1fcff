// revoke at a site with several devices: inventory comments intact, site key rotated, old fingerprint gone from
// .sops.yaml, the device's path gone, a SOPS file re-encrypted and readable by the remaining recipients (gpg).
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { initKeys } from '../../scripts/keys/init.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { loadGitopsPublicKeys } from '../../scripts/pipeline/inputs/public-keys.ts';
import { renderSopsConfig, sopsRules } from '../../scripts/render/gitops/index.ts';
import { sopsDecrypt, sopsEncrypt, sopsRecipients } from '../../scripts/lifecycle/sops.ts';
import { runCli } from '../helpers.ts';
const HAVE_TOOLS = requireTools(['gpg'], 'test/lifecycle/revoke.test.ts');

describe.runIf(HAVE_TOOLS)('edgeforge revoke', () => {
  it('revokes a stolen device end to end', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-revoke-'));
    const inv = path.join(dir, 'fleet.yaml');
    copyFileSync('inventory/example.yaml', inv);
    const keysDir = path.join(dir, 'keys');
    await initKeys({ dir: keysDir, exampleAdmin: true, fleet: 'acme-smart-factory' });
    const fleet = loadInventoryBytes(readFileSync(inv), inv);
    const siteDevices = fleet.active.filter((d) => d.siteId === 'kr-south/ulsan-plant-1').map((d) => d.id);
    const ks = await openKeyStore({ dir: keysDir });
    await ks.ensureSiteIdentities(['kr-south/ulsan-plant-1']);
    const devs = (await ks.ensureDeviceIdentities(siteDevices)).identities;
    const oldSite = await ks.loadSiteIdentity('kr-south/ulsan-plant-1');
    await ks.close();

    // a GitOps tree with the device paths, .sops.yaml and one site secret encrypted by the site rule
    const repo = path.join(dir, 'repo');
    for (const id of siteDevices) mkdirSync(path.join(repo, 'clusters/kr-south/ulsan-plant-1', id), { recursive: true });
    for (const id of siteDevices) writeFileSync(path.join(repo, 'clusters/kr-south/ulsan-plant-1', id, 'kustomization.yaml'), 'resources: []\n');
    const keys = await loadGitopsPublicKeys(keysDir, fleet);
    writeFileSync(path.join(repo, '.sops.yaml'), renderSopsConfig(fleet, keys));
    const rule = sopsRules(fleet, keys).find((r) => r.scope === 'site kr-south/ulsan-plant-1')!;
    const armored = new Map([...keys.deviceSops.values(), ...keys.siteSops.values(), ...keys.admins].map((k) => [k.fingerprint, k.publicArmored]));
    const secretFile = path.join(repo, 'clusters/kr-south/ulsan-plant-1/mqtt-secret.yaml');
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mqtt' }, stringData: { password: 'line-1-pw' } };
    writeFileSync(
      secretFile,
      await sopsEncrypt(
        secret,
        rule.recipients.map((fp) => ({ fingerprint: fp, publicKeyArmored: armored.get(fp)! })),
      ),
    );
    const stolen = devs.get('ulsan1-line1-002')!;
    expect(sopsRecipients(readFileSync(secretFile, 'utf8'))).toContain(stolen.sops.fingerprint);

    const r = await runCli(['revoke', 'ulsan1-line1-002', '--reason', 'stolen', '-i', inv, '--keys', keysDir, '--gitops', repo, '--json'], { env: { EDGEFORGE_NOW: '1767225600' } });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);

    // inventory: marked, comments and layout kept, still valid
    const text = readFileSync(inv, 'utf8');
    expect(text).toContain("# the Git host's key, pinned: devices never trust on first use");
    expect(text).toContain('            status: stolen\n            revoked: { reason: stolen, at: "2026-01-01T00:00:00Z" }');
    const after = loadInventoryBytes(Buffer.from(text), inv);
    expect(after.active.length).toBe(13);

    // keys: site key rotated, recorded
    expect(out.rotated.length).toBeGreaterThan(0);
    const ks2 = await openKeyStore({ dir: keysDir });
    const newSite = await ks2.loadSiteIdentity('kr-south/ulsan-plant-1');
    await ks2.close();
    expect(newSite.sops.fingerprint).not.toBe(oldSite.sops.fingerprint);

    // GitOps: device path gone, .sops.yaml without the device or the old site key
    expect(existsSync(path.join(repo, 'clusters/kr-south/ulsan-plant-1/ulsan1-line1-002'))).toBe(false);
    expect(readdirSync(path.join(repo, 'clusters/kr-south/ulsan-plant-1')).sort()).toEqual(['mqtt-secret.yaml', 'ulsan1-line1-001', 'ulsan1-line2-001', 'ulsan1-line2-002']);
    const sopsYaml = readFileSync(path.join(repo, '.sops.yaml'), 'utf8');
    expect(sopsYaml).not.toContain(stolen.sops.fingerprint);
    expect(sopsYaml).not.toContain(oldSite.sops.fingerprint);
    expect(sopsYaml).toContain(newSite.sops.fingerprint);

    // the site secret: new recipients; the thief's key no longer opens it; the others (and gpg) do
    const rotated = readFileSync(secretFile, 'utf8');
    const fps = sopsRecipients(rotated);
    expect(fps).not.toContain(stolen.sops.fingerprint);
    expect(fps).not.toContain(oldSite.sops.fingerprint);
    expect(fps).toContain(newSite.sops.fingerprint);
    await expect(sopsDecrypt(rotated, stolen.sops.privateKeyArmored)).rejects.toThrow();
    await expect(sopsDecrypt(rotated, oldSite.sops.privateKeyArmored)).rejects.toThrow();
    expect(await sopsDecrypt(rotated, devs.get('ulsan1-line1-001')!.sops.privateKeyArmored)).toEqual(secret);
    const home = mkdtempSync(path.join(tmpdir(), 'ef-gpg-'));
    writeFileSync(path.join(home, 'k.asc'), newSite.sops.privateKeyArmored);
    execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--import', path.join(home, 'k.asc')], { stdio: 'ignore' });
    const enc = parse(rotated).sops.pgp.find((p: { fp: string }) => p.fp === newSite.sops.fingerprint).enc;
    expect(spawnSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--decrypt'], { input: enc }).status).toBe(0);

    // the signed record, JSON + text, verified by gpg against the build key
    const json = out.records.map((f: string) => path.resolve(f)).find((f: string) => f.endsWith('.json'))!;
    const record = JSON.parse(readFileSync(json, 'utf8'));
    expect(record).toMatchObject({ format: 'edgeforge-revocation/1', reason: 'stolen', device: { id: 'ulsan1-line1-002', serial: '10000000a3f1c002' } });
    expect(record.fingerprints.deployKey).toBe(stolen.deployKey.fingerprint);
    expect(record.operatorActions.map((a: { what: string }) => a.what).join('\n')).toMatch(/deploy key[\s\S]*tang[\s\S]*recovery passphrase/);
    expect(readFileSync(json.replace(/\.json$/, '.txt'), 'utf8')).toContain('You must still do, elsewhere:');
    writeFileSync(path.join(home, 'b.asc'), readFileSync(path.join(keysDir, 'build/signing-key.asc')));
    execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--import', path.join(home, 'b.asc')], { stdio: 'ignore' });
    expect(spawnSync(tool('gpg'), ['--homedir', home, '--batch', '--verify', json + '.asc', json]).status).toBe(0);

    // revoking again is refused, nothing changes
    const again = await runCli(['revoke', 'ulsan1-line1-002', '--reason', 'stolen', '-i', inv, '--keys', keysDir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already stolen');

    // replace: the slot gets a fresh identity, the old entry records replacedBy, artifacts are built
    const outDir = path.join(dir, 'out');
    const rr = await runCli(['replace', 'ulsan1-line1-002', '--serial', 'NEWSERIAL01', '--mac', 'dc:a6:32:10:01:99', '-i', inv, '--keys', keysDir, '-o', outDir, '--json'], {
      env: { SOURCE_DATE_EPOCH: '1767225600' },
    });
    expect(rr.code, rr.stderr).toBe(0);
    const text2 = readFileSync(inv, 'utf8');
    expect(text2).toContain("# the Git host's key, pinned: devices never trust on first use");
    const fleet2 = loadInventoryBytes(Buffer.from(text2), inv);
    const oldEntry = fleet2.devices.find((d) => d.id === 'ulsan1-line1-002')!;
    const fresh = fleet2.devices.find((d) => d.id === 'ulsan1-line1-002-r2')!;
    expect(oldEntry).toMatchObject({ status: 'replaced', replacedBy: 'ulsan1-line1-002-r2', revoked: { reason: 'stolen' } });
    expect(fresh).toMatchObject({ status: 'active', serial: 'NEWSERIAL01', mac: 'dc:a6:32:10:01:99', siteId: 'kr-south/ulsan-plant-1', profileName: 'rpi4-2g', role: 'server' });
    expect(fresh.network).toMatchObject({ mode: 'static', ip: '10.20.1.12' });
    expect(fleet2.active.length).toBe(14);
    const manifest = JSON.parse(readFileSync(path.join(outDir, 'manifest.json'), 'utf8'));
    expect(manifest.devices.map((d: { id: string }) => d.id)).toContain('ulsan1-line1-002-r2');
    const ks3 = await openKeyStore({ dir: keysDir });
    const freshKeys = await ks3.loadDeviceIdentity('ulsan1-line1-002-r2');
    await ks3.close();
    expect(freshKeys.sshHostKey.publicKey).not.toBe(stolen.sshHostKey.publicKey);
    expect(freshKeys.sops.fingerprint).not.toBe(stolen.sops.fingerprint);
    const meta = readFileSync(path.join(outDir, 'devices/ulsan1-line1-002-r2/seed/meta-data'), 'utf8');
    expect(meta).toContain('local-hostname: ulsan1-line1-002-r2');
    expect((await runCli(['replace', 'ulsan1-line1-001', '--serial', 'X', '-i', inv, '--keys', keysDir, '-o', outDir])).stderr).toContain('is active; revoke it first');
  }, 180_000);
});
