// The OCI transport through the command line, as CI and an operator run it: build an OCI fleet, write its
// GitOps tree and commit it, `registry config`, start the registry and `registry token-server` from what it
// wrote, `publish` with the publisher's password, and the signed manifest records every digest (verify passes);
// the site cache `registry config` writes; and revocation as an operator does it (`revoke`, `registry config`).
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { freePort, makeTestCerts } from '../../scripts/testkit/mosquitto.ts';
import { startRegistry, type RunningRegistry } from '../../scripts/testkit/registry.ts';
import { RegistryClient } from '../../scripts/registry/client.ts';
import { OCI_MANIFEST_MEDIA_TYPE } from '../../scripts/render/oci/format.ts';
import { REPO } from '../../scripts/testkit/fixed-secrets.ts';
import { runCli } from '../helpers.ts';

const HAVE = requireTools(['docker-registry', 'git', 'openssl'], 'edgeforge publish / registry config');
const env = { SOURCE_DATE_EPOCH: '1767225600' };
const stops: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const s of stops) await s();
});

/** What `registry config` writes for a site cache: distribution in pull-through mode with the site's upstream user. */
function expectSiteCache(reg: string, centralPort: number, centralAccess: { users: { name: string; access?: unknown }[] }): void {
  const site = path.join(reg, 'sites/eu-central/brno-warehouse-1');
  const config = YAML.parse(readFileSync(path.join(site, 'config.yml'), 'utf8'));
  const upstream = readFileSync(path.join(site, 'upstream.password'), 'utf8').trim();
  expect(config.proxy).toEqual({ remoteurl: `https://127.0.0.1:${centralPort}`, username: 'site-cache-eu-central-brno-warehouse-1', password: upstream });
  expect(config.auth.token).toMatchObject({ service: expect.any(String), issuer: expect.any(String) });
  // it holds the upstream password: readable by its owner only
  expect(statSync(path.join(site, 'config.yml')).mode & 0o077).toBe(0);
  expect(statSync(path.join(site, 'upstream.password')).mode & 0o077).toBe(0);
  // its own issuer knows that site's devices only; the central one knows the cache's upstream user
  const siteUsers = JSON.parse(readFileSync(path.join(site, 'issuer/access.json'), 'utf8')).users.map((u: { name: string }) => u.name);
  expect(siteUsers).toContain('brno1-dock-001');
  expect(siteUsers.every((u: string) => u.startsWith('brno1-'))).toBe(true);
  expect(centralAccess.users.map((u) => u.name)).toContain('site-cache-eu-central-brno-warehouse-1');
  expect(JSON.stringify(centralAccess)).not.toContain(upstream);
}

describe.runIf(HAVE)('publish and registry config, from the command line', () => {
  it('builds, configures, publishes; the manifest records the artifacts and the device credentials; devices pull with theirs', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-oci-cli-'));
    const certs = makeTestCerts(path.join(dir, 'pki'), ['IP:127.0.0.1', 'DNS:localhost']);
    const [port, tokenPort, cachePort] = [await freePort(), await freePort(), await freePort()];
    const inv = path.join(dir, 'fleet.yaml');
    const text = readFileSync(path.join(REPO, 'inventory/example.yaml'), 'utf8').replace(
      /^(  knownHosts: .*\n)/m,
      `$1  transport: oci\n  oci: { registry: "127.0.0.1:${port}", repository: acme/fleet, caFile: pki/ca.pem, siteCaches: { "eu-central/brno-warehouse-1": "127.0.0.1:${cachePort}" } }\n`,
    );
    writeFileSync(inv, text);
    const keys = path.join(dir, 'keys');
    const out = path.join(dir, 'out');
    const common = ['-i', inv, '--keys', keys];
    const b = await runCli(['build', ...common, '--example-admin', '-o', out], { env });
    expect(b.code, b.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    const u1 = manifest.devices.find((d: { id: string }) => d.id === 'ulsan1-line1-001');
    expect(u1.registry).toMatchObject({ repository: 'acme/fleet/kr-south/ulsan-plant-1', username: 'ulsan1-line1-001' });
    expect(u1.registry.verifier).toMatch(/^[0-9a-f]{64}$/);
    // agents of the multi-node site pull nothing: Flux runs on their server
    expect(manifest.devices.find((d: { id: string }) => d.id === 'changwon2-press-001').registry).toBeUndefined();
    // the device's bootstrap: an OCIRepository with its credential and the CA pinned
    const sync = YAML.parseAllDocuments(readFileSync(path.join(out, 'devices/ulsan1-line1-001/bundle/flux/edgeforge-flux-sync.yaml'), 'utf8')).map((d) => d.toJS());
    expect(sync[0]).toMatchObject({
      kind: 'OCIRepository',
      spec: { url: `oci://127.0.0.1:${port}/acme/fleet/kr-south/ulsan-plant-1`, ref: { tag: 'latest' }, secretRef: { name: 'flux-system' }, certSecretRef: { name: 'registry-ca' } },
    });
    expect(sync.slice(1).every((k) => k.spec.sourceRef.kind === 'OCIRepository')).toBe(true);

    // the fleet repository, committed
    const repo = path.join(dir, 'fleet-repo');
    mkdirSync(repo);
    expect((await runCli(['gitops', ...common, '--to', repo], { env })).code).toBe(0);
    const git = (...a: string[]) => execFileSync(tool('git'), ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-qm', 'fleet');

    // the registry side
    const reg = path.join(dir, 'registry');
    const configArgs = ['registry', 'config', ...common, '-o', out, '--to', reg, '--listen', `127.0.0.1:${port}`, '--token-port', String(tokenPort), '--storage', path.join(dir, 'storage')];
    const rc = await runCli([...configArgs, '--tls-cert', certs.cert, '--tls-key', certs.key, '--json'], { env });
    expect(rc.code, rc.stderr).toBe(0);
    const access = JSON.parse(readFileSync(path.join(reg, 'central/issuer/access.json'), 'utf8'));
    expect(access.users.map((u: { name: string }) => u.name)).toContain('ulsan1-line1-001');
    expectSiteCache(reg, port, access);
    const issuer: ChildProcess = spawn(
      process.execPath,
      [
        path.join(REPO, 'scripts/bin/edgeforge.mjs'),
        'registry',
        'token-server',
        '--dir',
        path.join(reg, 'central'),
        '--listen',
        `127.0.0.1:${tokenPort}`,
        '--tls-cert',
        certs.cert,
        '--tls-key',
        certs.key,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EDGEFORGE_RUN_SOURCES: '1' } },
    );
    stops.push(() => void issuer.kill('SIGTERM'));
    let issuerLog = '';
    issuer.stderr!.on('data', (c) => (issuerLog += c));
    for (let i = 0; i < 200 && !issuerLog.includes('token issuer for'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(issuerLog).toContain('token issuer for');
    const registry: RunningRegistry = await startRegistry(path.join(reg, 'central/config.yml'), port);
    stops.push(() => registry.stop());

    const pw = path.join(reg, 'central/publisher.password');
    const p = await runCli(['publish', ...common, '-o', out, '--gitops', repo, '--password-file', pw, '--json'], { env });
    expect(p.code, p.stderr).toBe(0);
    const pub = JSON.parse(p.stdout);
    expect(pub.pushed).toHaveLength(4);
    const after = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(after.oci.registry).toBe(`127.0.0.1:${port}`);
    expect(after.oci.artifacts.map((a: { site: string }) => a.site)).toEqual(['kr-south/ulsan-plant-1', 'kr-south/changwon-plant-2', 'eu-central/stuttgart-plant-3', 'eu-central/brno-warehouse-1']);
    expect((await runCli(['verify', out, '--keys', keys])).code).toBe(0);

    // what the manifest says is what a device gets, with the credential derived from its own deploy key
    const seedSecrets = readFileSync(path.join(out, 'devices/ulsan1-line1-001/bundle/flux/edgeforge-flux-secrets.yaml'), 'utf8');
    const docker = YAML.parseAllDocuments(seedSecrets)
      .map((d) => d.toJS())
      .find((d) => d.type === 'kubernetes.io/dockerconfigjson');
    const auths = JSON.parse(Buffer.from(docker.data['.dockerconfigjson'], 'base64').toString('utf8')).auths[`127.0.0.1:${port}`];
    const c = new RegistryClient({ host: `127.0.0.1:${port}`, ca: readFileSync(certs.ca), username: auths.username, password: auths.password });
    try {
      const m = await c.manifest('acme/fleet/kr-south/ulsan-plant-1', 'latest', OCI_MANIFEST_MEDIA_TYPE);
      expect(m!.digest).toBe(after.oci.artifacts[0].digest);
      // the signed record names the config blob too, and the registry serves it under that digest
      const body = JSON.parse(m!.bytes.toString('utf8'));
      expect(after.oci.artifacts[0].config).toEqual({ digest: body.config.digest, bytes: body.config.size });
      expect((await c.blob('acme/fleet/kr-south/ulsan-plant-1', after.oci.artifacts[0].config.digest)).length).toBe(body.config.size);
    } finally {
      c.close();
    }
    // publishing the same revision again pushes nothing
    const again = await runCli(['publish', ...common, '-o', out, '--gitops', repo, '--password-file', pw, '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ pushed: [], unchanged: 4 });
    // only verifiers reach the registry host
    expect(readFileSync(path.join(reg, 'central/issuer/access.json'), 'utf8')).not.toContain(auths.password);
    // what is published is a revision: a tree with uncommitted changes is refused
    writeFileSync(path.join(repo, 'apps/base/namespace.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n');
    const dirty = await runCli(['publish', ...common, '-o', out, '--gitops', repo, '--password-file', pw], { env });
    expect(dirty.code).toBe(2);
    expect(dirty.stderr).toMatch(/changes not committed/);
    // the issuer logged users and scopes, never a password
    expect(issuerLog).toMatch(/200 ulsan1-line1-001 repository:acme\/fleet\/kr-south\/ulsan-plant-1:pull/);
    expect(issuerLog).not.toContain(auths.password);

    // revocation as the docs tell it: `revoke`, then `registry config` again; the running issuer re-reads its
    // access file by itself (no restart), refuses the revoked device, and the site's other device still pulls
    const credentialOf = (id: string) => {
      const secrets = YAML.parseAllDocuments(readFileSync(path.join(out, `devices/${id}/bundle/flux/edgeforge-flux-secrets.yaml`), 'utf8')).map((d) => d.toJS());
      const pull = secrets.find((d) => d.type === 'kubernetes.io/dockerconfigjson');
      return JSON.parse(Buffer.from(pull.data['.dockerconfigjson'], 'base64').toString('utf8')).auths[`127.0.0.1:${port}`] as { username: string; password: string };
    };
    const pullAs = async (cred: { username: string; password: string }) => {
      const client = new RegistryClient({ host: `127.0.0.1:${port}`, ca: readFileSync(certs.ca), ...cred });
      try {
        return await client.manifest('acme/fleet/kr-south/ulsan-plant-1', 'latest', OCI_MANIFEST_MEDIA_TYPE);
      } finally {
        client.close();
      }
    };
    const stolen = credentialOf('ulsan1-line1-002');
    const sibling = credentialOf('ulsan1-line1-001');
    expect((await pullAs(stolen))!.digest).toBe(after.oci.artifacts[0].digest); // works before
    const rv = await runCli(['revoke', 'ulsan1-line1-002', '--reason', 'stolen', ...common], { env });
    expect(rv.code, rv.stderr).toBe(0);
    // what the operator is told: the registry step, and no Git deploy key (an OCI device has none registered)
    expect(rv.stdout + rv.stderr).toMatch(/Refuse ulsan1-line1-002's registry pull credential/);
    expect(rv.stdout + rv.stderr).not.toMatch(/deploy key on the Git host/);
    const rc2 = await runCli([...configArgs, '--tls-cert', certs.cert, '--tls-key', certs.key], { env });
    expect(rc2.code, rc2.stderr).toBe(0);
    expect(rc2.stdout).toMatch(/token issuers re-read their access files/);
    const users = JSON.parse(readFileSync(path.join(reg, 'central/issuer/access.json'), 'utf8')).users.map((u: { name: string }) => u.name);
    expect(users).not.toContain('ulsan1-line1-002');
    expect(users).toContain('ulsan1-line1-001');
    await expect(pullAs(stolen)).rejects.toThrow(/refused ulsan1-line1-002 \(401\)/);
    expect((await pullAs(sibling))!.digest).toBe(after.oci.artifacts[0].digest);
    expect(issuerLog).toMatch(/401 ulsan1-line1-002/);
  }, 240_000);

  it('refuses a fleet that pulls from Git', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-oci-cli2-'));
    copyFileSync(path.join(REPO, 'inventory/example.yaml'), path.join(dir, 'fleet.yaml'));
    const r = await runCli(['publish', '-i', path.join(dir, 'fleet.yaml'), '--gitops', dir], { env: { EDGEFORGE_REGISTRY_PASSWORD: 'x' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pulls from Git/);
  });
});
