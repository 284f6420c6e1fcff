// revoke through Git: on a real GitOps tree (edgeforge gitops --to) with real keys, revoking a device of the
// example's single-node-per-device site and of its multi-node site leaves every remaining Flux device of that site
// a sops-keys/ file only its own key opens (GnuPG decrypts the data key), nothing the stolen device's key opens,
// site secrets readable with the new site key, and Flux's ordering (device dependsOn sops-keys) in gotk-sync.yaml.
// Refusals change nothing (trees hashed before and after).
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, readdirSync, statSync, existsSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { parse, parseAllDocuments } from 'yaml';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { initKeys } from '../../scripts/keys/init.ts';
import type { DeviceIdentity, SiteIdentity } from '../../scripts/keys/types.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { loadGitopsPublicKeys } from '../../scripts/pipeline/inputs/public-keys.ts';
import { sopsDecrypt, sopsEncrypt, decryptValue } from '../../scripts/lifecycle/sops.ts';
import { recipientsFor } from '../../scripts/lifecycle/rekey.ts';
import { runsFlux } from '../../scripts/render/flux/sync.ts';
import { agentJoinToken } from '../../scripts/keys/join-token.ts';
import { runCli } from '../helpers.ts';
import { exampleInventoryText, fakeBundle } from '../gitops/fixtures.ts';
const HAVE_TOOLS = requireTools(['gpg', 'kubectl', 'ssh-keygen'], 'test/lifecycle/revoke-gitops.test.ts');

const bundle = fakeBundle();
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };
let template: string;
let ids: Map<string, DeviceIdentity>;
let sites: Map<string, SiteIdentity>;

function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const n of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = statSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else h.update(`${r}\0${st.mode}\0`).update(readFileSync(path.join(dir, r)));
    }
  };
  walk('');
  return h.digest('hex');
}

function gpgDataKey(privateArmored: string, enc: string): Buffer | null {
  const home = mkdtempSync(path.join(tmpdir(), 'ef-gpg-'));
  writeFileSync(path.join(home, 'k.asc'), privateArmored);
  execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--import', path.join(home, 'k.asc')], { stdio: 'ignore' });
  const r = spawnSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--decrypt'], { input: enc });
  return r.status === 0 ? r.stdout : null;
}

beforeAll(async () => {
  template = mkdtempSync(path.join(tmpdir(), 'ef-revoke-git-'));
  writeFileSync(path.join(template, 'fleet.yaml'), exampleInventoryText(install));
  mkdirSync(path.join(template, 'bundles/flux'), { recursive: true });
  writeFileSync(path.join(template, 'bundles/flux/install.yaml'), bundle.bytes);
  const keysDir = path.join(template, 'keys');
  await initKeys({ dir: keysDir, exampleAdmin: true, fleet: 'acme-smart-factory' });
  const fleet = loadInventoryBytes(readFileSync(path.join(template, 'fleet.yaml')), 'fleet.yaml');
  const ks = await openKeyStore({ dir: keysDir });
  sites = (await ks.ensureSiteIdentities(fleet.sites.map((s) => s.id))).identities;
  ids = (await ks.ensureDeviceIdentities(fleet.active.map((d) => d.id))).identities;
  await ks.close();
  const r = await runCli(['gitops', '--to', 'repo', '-i', 'fleet.yaml', '--keys', 'keys'], { cwd: template, env: { SOURCE_DATE_EPOCH: '1767225600', EDGEFORGE_NOW: '1767225600' } });
  expect(r.code, r.stderr).toBe(0);
  // a site secret in each site overlay, encrypted as .sops.yaml says (site key + its Flux devices + admins)
  const keys = await loadGitopsPublicKeys(keysDir, fleet);
  for (const s of fleet.sites) {
    const rel = `overlays/sites/${s.id}/broker-secret.yaml`;
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'broker', namespace: 'apps' }, stringData: { password: `pw-${s.name}` } };
    writeFileSync(path.join(template, 'repo', rel), await sopsEncrypt(secret, recipientsFor(rel, fleet, keys)));
  }
}, 180_000);

function copy(): { dir: string; run: (...a: string[]) => ReturnType<typeof runCli> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'ef-revoke-case-'));
  cpSync(template, dir, { recursive: true });
  return { dir, run: (...a) => runCli([...a, '-i', 'fleet.yaml', '--keys', 'keys'], { cwd: dir, env: { EDGEFORGE_NOW: '1767225600' } }) };
}

async function checkRevocation(siteId: string, stolenId: string) {
  const { dir, run } = copy();
  const fleet = loadInventoryBytes(readFileSync(path.join(dir, 'fleet.yaml')), 'fleet.yaml');
  const holders = fleet.active.filter((d) => d.siteId === siteId && runsFlux(d) && d.id !== stolenId);
  const before = new Map(
    readdirSync(path.join(dir, 'repo'), { recursive: true })
      .map(String)
      .map((p) => [p, existsSync(path.join(dir, 'repo', p)) && statSync(path.join(dir, 'repo', p)).isFile() ? readFileSync(path.join(dir, 'repo', p), 'utf8') : '']),
  );

  const r = await run('revoke', stolenId, '--reason', 'stolen', '--gitops', 'repo');
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/Delete the device's read-only deploy key on the Git host/);
  expect(r.stdout).toMatch(/new site key for/);

  const ks = await openKeyStore({ dir: path.join(dir, 'keys') });
  const newSite = await ks.loadSiteIdentity(siteId);
  await ks.close();
  const oldSite = sites.get(siteId)!;
  const stolen = ids.get(stolenId)!;
  expect(newSite.sops.fingerprint).not.toBe(oldSite.sops.fingerprint);

  // every remaining Flux device of the site: its own rotation file, opened by its key (GnuPG) and by no other
  expect(holders.length).toBeGreaterThan(0);
  for (const h of holders) {
    const base = path.join(dir, 'repo', 'clusters', h.region, h.site, h.id, 'sops-keys');
    const text = readFileSync(path.join(base, 'sops-gpg.yaml'), 'utf8');
    const doc = parse(text);
    expect(doc.sops.pgp.map((p: { fp: string }) => p.fp)).toEqual([ids.get(h.id)!.sops.fingerprint]);
    const dk = gpgDataKey(ids.get(h.id)!.sops.privateKeyArmored, doc.sops.pgp[0].enc);
    expect(dk, `gpg decrypts ${h.id}'s data key with its own key`).not.toBeNull();
    const siteEntry = `site-${h.region}-${h.site}.asc`;
    const siteKey = Buffer.from(String(decryptValue(doc.data[siteEntry], dk!, `data:${siteEntry}:`)), 'base64').toString('utf8');
    expect(siteKey.trim()).toBe(newSite.sops.privateKeyArmored.trim());
    const devKey = Buffer.from(String(decryptValue(doc.data[`device-${h.id}.asc`], dk!, `data:device-${h.id}.asc:`)), 'base64').toString('utf8');
    expect(devKey.trim()).toBe(ids.get(h.id)!.sops.privateKeyArmored.trim());
    const plain = await sopsDecrypt(text, ids.get(h.id)!.sops.privateKeyArmored); // MAC checked too
    expect(plain).toMatchObject({ kind: 'Secret', metadata: { name: 'sops-gpg', namespace: 'flux-system', annotations: { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' } } });
    for (const other of [stolen.sops.privateKeyArmored, oldSite.sops.privateKeyArmored, newSite.sops.privateKeyArmored]) await expect(sopsDecrypt(text, other)).rejects.toThrow();
    // kubectl kustomize renders the directory to exactly that Secret (still encrypted: Flux decrypts)
    const out = execFileSync(tool('kubectl'), ['kustomize', base], { encoding: 'utf8' });
    const objs = parseAllDocuments(out).map((d) => d.toJS());
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Secret/sops-gpg']);
    // the sync objects: device waits for sops-keys, which decrypts with sops-gpg and never prunes
    const sync = parseAllDocuments(readFileSync(path.join(dir, 'repo', 'clusters', h.region, h.site, h.id, 'flux-system/gotk-sync.yaml'), 'utf8')).map((d) => d.toJS());
    const ks2 = sync.find((o) => o.metadata.name === 'sops-keys');
    expect(ks2.spec).toMatchObject({ path: `./clusters/${h.region}/${h.site}/${h.id}/sops-keys`, prune: false, decryption: { provider: 'sops', secretRef: { name: 'sops-gpg' } } });
    expect(sync.find((o) => o.metadata.name === 'device').spec.dependsOn).toEqual([{ name: 'flux-system' }, { name: 'sops-keys' }]);
  }

  // no file in the tree opens with the stolen device's key or the old site key; no new file names them
  const files = readdirSync(path.join(dir, 'repo'), { recursive: true })
    .map(String)
    .filter((p) => statSync(path.join(dir, 'repo', p)).isFile());
  for (const p of files) {
    const text = readFileSync(path.join(dir, 'repo', p), 'utf8');
    if (before.get(p) !== text) {
      expect(text, p).not.toContain(stolen.sops.fingerprint);
      expect(text, p).not.toContain(stolen.sops.publicKeyArmored.split('\n')[3]);
    }
    if (!/^sops:\s*$/m.test(text)) continue;
    await expect(sopsDecrypt(text, stolen.sops.privateKeyArmored), p).rejects.toThrow();
    await expect(sopsDecrypt(text, oldSite.sops.privateKeyArmored), p).rejects.toThrow();
  }
  expect(existsSync(path.join(dir, 'repo/clusters', siteId, stolenId))).toBe(false);

  // the site's secret: re-encrypted, opens with the new site key
  const siteSecret = readFileSync(path.join(dir, 'repo/overlays/sites', siteId, 'broker-secret.yaml'), 'utf8');
  expect(await sopsDecrypt(siteSecret, newSite.sops.privateKeyArmored)).toMatchObject({ stringData: { password: `pw-${siteId.split('/')[1]}` } });

  // the site's public key admins encrypt with is the new one, the key .sops.yaml names (not the old one beside it)
  const siteAsc = `.sops/sites/${siteId}.asc`;
  const armorBody = (armored: string) => armored.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
  const ascNow = readFileSync(path.join(dir, 'repo', siteAsc), 'utf8');
  expect(before.get(siteAsc)).toContain(armorBody(oldSite.sops.publicKeyArmored)[0]);
  expect(ascNow).not.toBe(before.get(siteAsc));
  for (const line of armorBody(newSite.sops.publicKeyArmored)) expect(ascNow).toContain(line);
  expect(ascNow).not.toContain(armorBody(oldSite.sops.publicKeyArmored)[0]);
  const sopsYaml = readFileSync(path.join(dir, 'repo/.sops.yaml'), 'utf8');
  expect(sopsYaml).toContain(newSite.sops.fingerprint.toUpperCase());
  expect(sopsYaml).not.toContain(oldSite.sops.fingerprint.toUpperCase());
  return { dir, run };
}

describe.runIf(HAVE_TOOLS)('revoke delivers the new site key through Git', () => {
  it('a device of a site of single-node devices (kr-south/ulsan-plant-1)', async () => {
    await checkRevocation('kr-south/ulsan-plant-1', 'ulsan1-line1-002');
  }, 120_000);

  it('an agent of the multi-node site (kr-south/changwon-plant-2)', async () => {
    const jt = 'clusters/kr-south/changwon-plant-2/changwon2-server/join-tokens';
    const tokenBefore = readFileSync(path.join(template, 'repo', jt, 'changwon2-press-002.token.yaml'), 'utf8');
    const { dir } = await checkRevocation('kr-south/changwon-plant-2', 'changwon2-press-001');
    // its join token is gone from Git (Flux prunes the Secret), the other agent's is untouched
    expect(existsSync(path.join(dir, 'repo', jt, 'changwon2-press-001.token.yaml'))).toBe(false);
    expect(readFileSync(path.join(dir, 'repo', jt, 'changwon2-press-002.token.yaml'), 'utf8')).toBe(tokenBefore);
    // the remaining agent's join token is not the stolen one's (nothing shared between agents)
    expect(agentJoinToken(ids.get('changwon2-press-002')!).token).not.toBe(agentJoinToken(ids.get('changwon2-press-001')!).token);
    expect(agentJoinToken(ids.get('changwon2-press-002')!).id).not.toBe(agentJoinToken(ids.get('changwon2-press-001')!).id);
    const objs = parseAllDocuments(execFileSync(tool('kubectl'), ['kustomize', path.join(dir, 'repo', jt)], { encoding: 'utf8' })).map((d) => d.toJS());
    // the Job's name ends in a hash of its pod template (a new kubectl pin gives a new Job, never an immutable-field change)
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`.replace(/^(Job\/.*)-[0-9a-f]{8}$/, '$1-<hash>')).sort();
    expect(kinds).toEqual(
      [
        'Secret/bootstrap-token-' + agentJoinToken(ids.get('changwon2-press-002')!).id,
        'ValidatingAdmissionPolicy/edgeforge-revoked-changwon2-press-001',
        'ValidatingAdmissionPolicyBinding/edgeforge-revoked-changwon2-press-001',
        'ServiceAccount/revoke-changwon2-press-001',
        'ClusterRole/revoke-changwon2-press-001',
        'ClusterRoleBinding/revoke-changwon2-press-001',
        'Role/revoke-changwon2-press-001',
        'RoleBinding/revoke-changwon2-press-001',
        'Job/revoke-changwon2-press-001-<hash>',
      ].sort(),
    );
    const vap = objs.find((o) => o.kind === 'ValidatingAdmissionPolicy');
    expect(vap.spec.validations[0].expression).toBe("request.userInfo.username != 'system:node:changwon2-press-001'");
    const job = objs.find((o) => o.kind === 'Job');
    expect(job.spec.template.spec.initContainers[0].args.slice(0, 3)).toEqual(['delete', 'node', 'changwon2-press-001']);
    expect(job.spec.template.spec.containers[0].args).toContain('changwon2-press-001.node-password.k3s');
    // least privilege: the Job may delete that one node and that one Secret
    expect(objs.find((o) => o.kind === 'ClusterRole').rules).toEqual([{ apiGroups: [''], resources: ['nodes'], resourceNames: ['changwon2-press-001'], verbs: ['get', 'delete'] }]);
    expect(objs.find((o) => o.kind === 'Role').rules[0].resourceNames).toEqual(['changwon2-press-001.node-password.k3s']);
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('agent join tokens through Git', () => {
  it('gitops --to writes one bootstrap token per agent, encrypted to the server key; the agent seed has the same token', async () => {
    const jt = path.join(template, 'repo/clusters/kr-south/changwon-plant-2/changwon2-server/join-tokens');
    const server = ids.get('changwon2-server')!;
    const toks = new Set<string>();
    for (const agent of ['changwon2-press-001', 'changwon2-press-002']) {
      const text = readFileSync(path.join(jt, `${agent}.token.yaml`), 'utf8');
      const doc = parse(text);
      expect(doc.sops.pgp.map((p: { fp: string }) => p.fp)).toEqual([server.sops.fingerprint]);
      const dk = gpgDataKey(server.sops.privateKeyArmored, doc.sops.pgp[0].enc);
      expect(dk, 'gpg opens the data key with the server key').not.toBeNull();
      const want = agentJoinToken(ids.get(agent)!);
      expect(decryptValue(doc.stringData['token-secret'], dk!, 'stringData:token-secret:')).toBe(want.secret);
      const plain = (await sopsDecrypt(text, server.sops.privateKeyArmored)) as { metadata: { name: string }; type: string; stringData: Record<string, string> };
      expect(plain).toMatchObject({ type: 'bootstrap.kubernetes.io/token', metadata: { name: `bootstrap-token-${want.id}` } });
      // what `k3s token create` writes, authentication only, expiring joinWindow (30d) after it was written (EDGEFORGE_NOW: the clock)
      expect(plain.stringData).toEqual({
        description: `edgeforge: join token of agent ${agent} for changwon2-server`,
        'token-id': want.id,
        'token-secret': want.secret,
        expiration: '2026-01-31T00:00:00Z',
        'usage-bootstrap-authentication': 'true',
        'auth-extra-groups': 'system:bootstrappers:k3s:default-node-token',
      });
      await expect(sopsDecrypt(text, ids.get(agent)!.sops.privateKeyArmored)).rejects.toThrow();
      toks.add(want.token);
      expect(want.token).not.toBe(server.agentToken);
    }
    expect(toks.size).toBe(2);
    // idempotent: a second run rewrites nothing
    const before = treeHash(path.join(template, 'repo'));
    const again = await runCli(['gitops', '--to', 'repo', '-i', 'fleet.yaml', '--keys', 'keys', '--json'], { cwd: template, env: { SOURCE_DATE_EPOCH: '1767225600', EDGEFORGE_NOW: '1767225600' } });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).joinTokens).toMatchObject({ written: [], deleted: [], pending: [] });
    expect(treeHash(path.join(template, 'repo'))).toBe(before);
  }, 60_000);
});

describe.runIf(HAVE_TOOLS)('keys rotate --site --gitops', () => {
  it('delivers the new site key to every Flux device of the site and re-encrypts its secrets', async () => {
    const { dir, run } = copy();
    const r = await run('keys', 'rotate', '--site', 'eu-central/stuttgart-plant-3', '--gitops', 'repo', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const ks = await openKeyStore({ dir: path.join(dir, 'keys') });
    const newSite = await ks.loadSiteIdentity('eu-central/stuttgart-plant-3');
    await ks.close();
    expect(out.gitops.reencrypted).toContain('overlays/sites/eu-central/stuttgart-plant-3/broker-secret.yaml');
    const devices = ['stuttgart3-asm-001', 'stuttgart3-asm-002', 'stuttgart3-asm-003', 'stuttgart3-qa-001'];
    expect(out.gitops.siteKeyDelivered.filter((p: string) => p.endsWith('sops-gpg.yaml')).sort()).toEqual(devices.map((d) => `clusters/eu-central/stuttgart-plant-3/${d}/sops-keys/sops-gpg.yaml`));
    for (const d of devices) {
      const plain = (await sopsDecrypt(readFileSync(path.join(dir, 'repo/clusters/eu-central/stuttgart-plant-3', d, 'sops-keys/sops-gpg.yaml'), 'utf8'), ids.get(d)!.sops.privateKeyArmored)) as {
        data: Record<string, string>;
      };
      expect(Buffer.from(plain.data['site-eu-central-stuttgart-plant-3.asc'], 'base64').toString().trim()).toBe(newSite.sops.privateKeyArmored.trim());
    }
    const secret = readFileSync(path.join(dir, 'repo/overlays/sites/eu-central/stuttgart-plant-3/broker-secret.yaml'), 'utf8');
    expect(await sopsDecrypt(secret, newSite.sops.privateKeyArmored)).toMatchObject({ stringData: { password: 'pw-stuttgart-plant-3' } });
    await expect(sopsDecrypt(secret, sites.get('eu-central/stuttgart-plant-3')!.sops.privateKeyArmored)).rejects.toThrow();
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('revoke refuses bad input and changes nothing', () => {
  const cases: [string, (dir: string) => void, string[], RegExp][] = [
    ['an unknown id', () => {}, ['revoke', 'ulsan1-line9-001', '--reason', 'stolen', '--gitops', 'repo'], /no device "ulsan1-line9-001"/],
    [
      'the server of a multi-node site with active agents',
      () => {},
      ['revoke', 'changwon2-server', '--reason', 'lost', '--gitops', 'repo'],
      /only server of kr-south\/changwon-plant-2.*changwon2-press-001, changwon2-press-002.*revoke the agents first/,
    ],
    [
      'a device whose keys are missing',
      (dir) => {
        cpSync(path.join(dir, 'keys/devices/brno1-dock-002'), path.join(dir, 'moved'), { recursive: true });
        execFileSync('rm', ['-r', path.join(dir, 'keys/devices/brno1-dock-002')]);
      },
      ['revoke', 'brno1-dock-002', '--reason', 'stolen', '--gitops', 'repo'],
      /has no keys in .*keys/,
    ],
    [
      'a site secret the site key cannot open',
      (dir) => {
        const f = path.join(dir, 'repo/overlays/sites/eu-central/brno-warehouse-1/broker-secret.yaml');
        writeFileSync(f, readFileSync(f, 'utf8').replace(/data:[A-Za-z0-9+/=]+,iv/, 'data:AAAA,iv'));
      },
      ['revoke', 'brno1-dock-001', '--reason', 'stolen', '--gitops', 'repo'],
      /broker-secret\.yaml: cannot open it with the site key/,
    ],
  ];
  for (const [what, prepare, argv, message] of cases) {
    it(
      what,
      async () => {
        const { dir, run } = copy();
        prepare(dir);
        const hashes = () => [
          treeHash(path.join(dir, 'keys')),
          treeHash(path.join(dir, 'repo')),
          createHash('sha256')
            .update(readFileSync(path.join(dir, 'fleet.yaml')))
            .digest('hex'),
        ];
        const before = hashes();
        const r = await run(...argv);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).toMatch(/Nothing was changed/);
        expect(hashes()).toEqual(before);
      },
      60_000,
    );
  }

  it('an already revoked device', async () => {
    const { dir, run } = copy();
    expect((await run('revoke', 'brno1-dock-003', '--reason', 'retired', '--gitops', 'repo')).code).toBe(0);
    const before = [treeHash(path.join(dir, 'keys')), treeHash(path.join(dir, 'repo')), readFileSync(path.join(dir, 'fleet.yaml'), 'utf8')];
    const r = await run('revoke', 'brno1-dock-003', '--reason', 'stolen', '--gitops', 'repo');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already retired; nothing to revoke/);
    expect([treeHash(path.join(dir, 'keys')), treeHash(path.join(dir, 'repo')), readFileSync(path.join(dir, 'fleet.yaml'), 'utf8')]).toEqual(before);
  }, 60_000);
});
