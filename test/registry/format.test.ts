// The OCI transport's pure parts: what a device renders passes the pinned Flux release's own CRDs, a site's
// artifact holds what its devices read and nothing of other sites, the bytes are deterministic and real tar
// reads them, the token issuer's policy, and the issuer's certificate as openssl reads it.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { fluxSyncObjects, runsFlux } from '../../scripts/render/flux/sync.ts';
import { fluxSecretObjects } from '../../scripts/render/flux/secrets.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { checkObjects } from '../../scripts/conformance/check-objects.ts';
import { crdsOfRelease } from '../../scripts/conformance/upstream-crds.ts';
import { pinnedReleases } from '../../scripts/pipeline/gitops/releases.ts';
import { inSiteArtifact, siteArtifact } from '../../scripts/render/oci/artifact.ts';
import { gitopsSourceProblems } from '../../scripts/render/flux/sync.ts';
import { answer } from '../../scripts/registry/token-issuer.ts';
import { grantedActions, ACCESS_FORMAT, type AccessFile } from '../../scripts/render/oci/access.ts';
import { libtrustKeyId } from '../../scripts/registry/jwt.ts';
import { selfSignedCertificate } from '../../scripts/registry/cert.ts';
import { registryPullPassword, registryPullVerifier } from '../../scripts/keys/registry-pull.ts';
import { exampleInventoryText } from '../gitops/fixtures.ts';
import { siteEgress } from '../../scripts/render/plan/egress.ts';

const HAVE = requireTools(['tar', 'openssl'], 'OCI artifact format');
const ociFleet = (extra = '') =>
  loadInventoryBytes(
    Buffer.from(
      exampleInventoryText({ mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' }, (t) =>
        t.replace(/^(  knownHosts: .*\n)/m, `$1  transport: oci\n  oci: { registry: "registry.acme.example:5000", repository: fleet, caFile: ca.pem${extra} }\n`),
      ),
    ),
    'inventory/example.yaml',
  );
const CA = new Uint8Array(Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'));

describe('an OCI device', () => {
  it('renders an OCIRepository and Kustomizations that the pinned Flux release (v2.9.6) accepts, secrets too', () => {
    const fleet = ociFleet(', siteCaches: { "eu-central/brno-warehouse-1": "cache.brno.acme.example:5000" }');
    const crds = pinnedReleases(fleet).flatMap((r) => crdsOfRelease(r));
    expect(crds.some((c) => c.kind === 'OCIRepository' && c.version === 'v1' && c.release === 'flux@v2.9.6')).toBe(true);
    const objects = fleet.active
      .filter(runsFlux)
      .flatMap((d) =>
        [
          ...fluxSyncObjects(d, fleet),
          ...fluxSecretObjects(
            d,
            fleet,
            { deployKeyPrivate: fixedSecretsFor(d).deployKey!.privateKey, deployKeyPublic: fixedSecretsFor(d).deployKey!.publicKey, sopsPrivateArmored: fixedSecretsFor(d).sops!.privateKeyArmored },
            CA,
          ),
        ].map((o) => ({ path: d.id, object: o })),
      );
    expect(checkObjects(objects, { minors: [36], crds })).toEqual([]);
    const brno = fleet.active.find((d) => d.id === 'brno1-dock-001')!;
    const [src] = fluxSyncObjects(brno, fleet) as { kind: string; spec: { url: string } }[];
    expect(src.kind).toBe('OCIRepository');
    expect(src.spec.url).toBe('oci://cache.brno.acme.example:5000/fleet/eu-central/brno-warehouse-1');
    const [pull] = fluxSecretObjects(
      brno,
      fleet,
      { deployKeyPrivate: fixedSecretsFor(brno).deployKey!.privateKey, deployKeyPublic: fixedSecretsFor(brno).deployKey!.publicKey, sopsPrivateArmored: fixedSecretsFor(brno).sops!.privateKeyArmored },
      CA,
    ) as { type: string; data: Record<string, string> }[];
    const auths = JSON.parse(Buffer.from(pull.data['.dockerconfigjson'], 'base64').toString()).auths;
    expect(Object.keys(auths)).toEqual(['cache.brno.acme.example:5000']);
    expect(auths['cache.brno.acme.example:5000'].password).toBe(registryPullPassword(fixedSecretsFor(brno).deployKey!.privateKey));
  });

  it("polls on the same schedule as the Git transport: per device, the OCIRepository has the GitRepository's interval, jitter and timeout", () => {
    const helm = { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' };
    const git = loadInventoryBytes(Buffer.from(exampleInventoryText(helm)), 'inventory/example.yaml');
    const oci = ociFleet();
    const devices = git.active.filter(runsFlux);
    expect(devices.length).toBeGreaterThan(1);
    const schedule = (o: Record<string, any>) => ({ name: o.metadata.name, jitter: o.metadata.annotations['edgeforge.dev/poll-interval'], interval: o.spec.interval, timeout: o.spec.timeout });
    const intervals = new Set<string>();
    for (const d of devices) {
      const [g, ...gk] = fluxSyncObjects(d, git) as Record<string, any>[];
      const [o, ...ok] = fluxSyncObjects(
        oci.active.find((x) => x.id === d.id)!,
        oci,
      ) as Record<string, any>[];
      expect([g.kind, o.kind]).toEqual(['GitRepository', 'OCIRepository']);
      expect(schedule(o)).toEqual(schedule(g));
      intervals.add(g.spec.interval);
      // the Kustomizations differ only in the kind of source they name
      expect(ok.map((k) => ({ ...k.spec, sourceRef: { ...k.spec.sourceRef, kind: 'GitRepository' } }))).toEqual(gk.map((k) => k.spec));
    }
    // the jitter is per device: the check compares different schedules, not one constant
    expect(intervals.size).toBeGreaterThan(1);
  });

  it('the firewall request names the registry (or the site cache) and its token issuer instead of the Git host', () => {
    const fleet = ociFleet(', siteCaches: { "eu-central/brno-warehouse-1": "cache.brno.acme.example:5000" }');
    const rows = (id: string) =>
      siteEgress(
        fleet.sites.find((x) => x.id === id)!,
        fleet,
      ).map((r) => `${r.host} ${r.port}`);
    expect(rows('eu-central/brno-warehouse-1')).toEqual(expect.arrayContaining(['cache.brno.acme.example 5000/tcp', 'cache.brno.acme.example 5001/tcp']));
    expect(rows('kr-south/ulsan-plant-1')).toEqual(expect.arrayContaining(['registry.acme.example 5000/tcp', 'registry.acme.example 5001/tcp']));
    expect([...rows('eu-central/brno-warehouse-1'), ...rows('kr-south/ulsan-plant-1')].some((r) => r.startsWith('git.acme.example'))).toBe(false);
  });

  it('validate names a site cache for a site that does not exist, and an OCI transport without its settings', () => {
    expect(gitopsSourceProblems(ociFleet(', siteCaches: { "eu-central/nowhere": "cache:5000" }'))).toEqual([expect.stringMatching(/siteCaches\["eu-central\/nowhere"\]: no such site/)]);
    const f = ociFleet();
    delete (f.gitops as { oci?: unknown }).oci;
    expect(gitopsSourceProblems(f)).toEqual([expect.stringMatching(/gitops.transport is oci but gitops.oci is not set/)]);
  });

  it('each device has its own credential: a different password per deploy key, the verifier is its sha256', () => {
    const a = registryPullPassword('key A');
    expect(a).not.toBe(registryPullPassword('key B'));
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(registryPullVerifier(a)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('a site artifact', () => {
  const site = { region: 'kr-south', site: 'ulsan-plant-1' };
  it('holds the shared tree, its region and site, and nothing of other sites or the SOPS keys', () => {
    const keep = [
      'apps/base/kustomization.yaml',
      'infrastructure/flux-system/small/components.yaml',
      'clusters/kr-south/ulsan-plant-1/u1/kustomization.yaml',
      'overlays/regions/kr-south/kustomization.yaml',
      'overlays/sites/kr-south/ulsan-plant-1/kustomization.yaml',
      'upgrades/kr-south/ulsan-plant-1/plan.yaml',
      'README.md',
      'clusters/kr-south/region-note.yaml',
    ];
    const drop = [
      'clusters/kr-south/changwon-plant-2/c1/kustomization.yaml',
      'clusters/eu-central/brno-warehouse-1/b1/x.yaml',
      'overlays/regions/eu-central/kustomization.yaml',
      'overlays/sites/kr-south/changwon-plant-2/k.yaml',
      'overlays/sites/eu-central/brno-warehouse-1/k.yaml',
      'upgrades/eu-central/brno-warehouse-1/plan.yaml',
      '.sops.yaml',
      '.sops/devices/u1.asc',
      '.git/config',
    ];
    for (const p of keep) expect(inSiteArtifact(p, site), p).toBe(true);
    for (const p of drop) expect(inSiteArtifact(p, site), p).toBe(false);
  });

  it.runIf(HAVE)('is the same bytes for the same files in any order, and real tar reads it back', () => {
    const files = [
      { path: 'clusters/kr-south/ulsan-plant-1/u1/kustomization.yaml', bytes: Buffer.from('resources: []\n') },
      { path: 'apps/base/' + 'd'.repeat(120) + '/x.yaml', bytes: Buffer.from('a: 1\n') },
      { path: 'README.md', bytes: Buffer.alloc(1000, 0x61) },
    ];
    const meta = { source: 'ssh://git@git.example/fleet.git', revision: 'main@sha1:abc', created: '2026-01-01T00:00:00Z' };
    const a = siteArtifact(files, site, meta);
    const b = siteArtifact([...files].reverse(), site, meta);
    expect(a.layer.digest).toBe(b.layer.digest);
    expect(a.manifest.digest).toBe(b.manifest.digest);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-tar-'));
    writeFileSync(path.join(dir, 'a.tgz'), a.layer.bytes);
    execFileSync(tool('tar'), ['-xzf', 'a.tgz'], { cwd: dir });
    const listing = execFileSync(tool('tar'), ['-tvzf', 'a.tgz'], { cwd: dir, encoding: 'utf8' });
    expect(listing).toMatch(/-rw-r--r-- 0\/0 +1000 1970-01-01 00:00 README.md/);
    expect(execFileSync(tool('tar'), ['-xOzf', 'a.tgz', 'apps/base/' + 'd'.repeat(120) + '/x.yaml'], { cwd: dir, encoding: 'utf8' })).toBe('a: 1\n');
    // another revision: the same layer, another manifest
    expect(siteArtifact(files, site, { ...meta, revision: 'main@sha1:def' }).layer.digest).toBe(a.layer.digest);
  });
});

describe('the token issuer', () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const access: AccessFile = {
    format: ACCESS_FORMAT,
    service: 'edgeforge-registry',
    issuer: 'edgeforge central',
    users: [
      { name: 'dev-1', verifier: registryPullVerifier('pw-1'), access: [{ repository: 'fleet/r/s1', actions: ['pull' as const] }] },
      { name: 'edgeforge-publish', verifier: registryPullVerifier('pub'), access: [{ repository: 'fleet/*', actions: ['push' as const, 'pull' as const] }] },
    ],
  };
  const ask = (user: string, pw: string, scope: string) =>
    answer(access, privateKey, new URL(`https://i/token?service=edgeforge-registry&scope=${encodeURIComponent(scope)}`), 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64'), 300);
  const claims = (r: ReturnType<typeof ask>) => JSON.parse(Buffer.from((r.body as { token: string }).token.split('.')[1], 'base64url').toString());

  it("grants a device pull on its site's repository only, the publisher push under the prefix; refuses the rest", () => {
    expect(claims(ask('dev-1', 'pw-1', 'repository:fleet/r/s1:pull')).access).toEqual([{ type: 'repository', name: 'fleet/r/s1', actions: ['pull'] }]);
    expect(claims(ask('dev-1', 'pw-1', 'repository:fleet/r/s2:pull')).access).toEqual([]);
    expect(claims(ask('dev-1', 'pw-1', 'repository:fleet/r/s1:pull,push')).access).toEqual([{ type: 'repository', name: 'fleet/r/s1', actions: ['pull'] }]);
    expect(claims(ask('edgeforge-publish', 'pub', 'repository:fleet/r/s2:push,pull')).access[0].actions).toEqual(['pull', 'push']);
    expect(ask('dev-1', 'wrong', 'repository:fleet/r/s1:pull').status).toBe(401);
    expect(ask('dev-gone', 'pw-1', 'repository:fleet/r/s1:pull').status).toBe(401);
    expect(grantedActions(access.users[1], 'other/x', ['push'])).toEqual([]);
  });

  it('signs ES256 with the key distribution looks up by its libtrust key ID', () => {
    const r = ask('dev-1', 'pw-1', 'repository:fleet/r/s1:pull');
    const [h, c, s] = (r.body as { token: string }).token.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    expect(header).toEqual({ typ: 'JWT', alg: 'ES256', kid: libtrustKeyId(privateKey) });
    expect(header.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    expect(verify('sha256', Buffer.from(`${h}.${c}`), { key: privateKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))).toBe(true);
    const cl = claims(r);
    expect(cl).toMatchObject({ iss: 'edgeforge central', aud: 'edgeforge-registry', sub: 'dev-1' });
    expect(cl.exp - cl.iat).toBe(300);
  });

  it.runIf(HAVE)('its certificate is one openssl reads, of the signing key', () => {
    const pem = selfSignedCertificate(createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })), 'edgeforge test issuer', new Date('2026-01-01T00:00:00Z'), 3650, randomBytes(16));
    const x = new X509Certificate(pem);
    expect(x.subject).toBe('CN=edgeforge test issuer');
    expect(x.verify(x.publicKey)).toBe(true);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-cert-'));
    writeFileSync(path.join(dir, 'c.pem'), pem);
    const text = execFileSync(tool('openssl'), ['x509', '-in', path.join(dir, 'c.pem'), '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey/);
    expect(text).toMatch(/Not After : Dec 30 00:00:00 2035 GMT/);
  });
});
