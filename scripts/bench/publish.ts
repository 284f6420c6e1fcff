// npm run bench:publish [-- N]  — the central host's load per commit for N devices (default 2,000), Git beside
// OCI in one run, both measured with the real programs:
//   anchor: Git — the tree edgeforge writes for the generated fleet, committed; `git clone --depth 1` of it by
//     real git (CLONES times: the pack each Flux device fetches for every commit; source-controller keeps no
//     clone), times the Flux devices;
//   OCI — the same commits published by `edgeforge publish` to a real registry (Debian's docker-registry behind
//     edgeforge's token issuer, TLS, one credential per device), then every Flux device polls with its own
//     credential and the devices of the changed site fetch its artifact; one site behind a pull-through cache.
// A commit that changes one site is the case measured (the most common change); the fleet-wide case is in the plan.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { generateInventory } from '../inventory/generate.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { renderGitopsScaffold, type GitopsPublicKeys, type PgpPublic } from '../render/gitops/index.ts';
import { fastGenerateV4Key } from '../keys/pgp-v4.mjs';
import { runsFlux } from '../render/flux/sync.ts';
import { registryPullRecord } from '../render/flux/secrets.ts';
import { fixedSecretsFor } from '../testkit/fixed-secrets.ts';
import { registryPullPassword } from '../keys/registry-pull.ts';
import { freePort, makeTestCerts } from '../testkit/mosquitto.ts';
import { writeRegistryConfig } from '../registry/write-config.ts';
import { startTokenIssuer } from '../registry/token-issuer.ts';
import { startRegistry } from '../testkit/registry.ts';
import { tool } from '../testkit/tools.ts';
import { publish, readTreeAtHead } from '../pipeline/publish.ts';
import { RegistryClient } from '../registry/client.ts';
import { OCI_MANIFEST_MEDIA_TYPE, siteRepository } from '../render/oci/format.ts';
import { PUBLISHER_USER } from '../render/oci/registry-config.ts';

const N = Number(process.argv[2] ?? process.env.BENCH_DEVICES ?? 2000);
const CLONES = Number(process.env.BENCH_CLONES ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-bench-publish-'));
const stops: (() => Promise<void>)[] = [];
try {
  const certs = makeTestCerts(path.join(dir, 'pki'), ['IP:127.0.0.1', 'DNS:localhost']);
  const [port, cachePort, issuerPort, siteIssuerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // the generated fleet, pulling from OCI; its first site behind a cache
  let text = generateInventory(N);
  const firstSite = /^  ([a-z0-9-]+):\n    timezone:[^\n]*\n    sites:\n      ([a-z0-9-]+):/m.exec(text)!;
  const cached = `${firstSite[1]}/${firstSite[2]}`;
  text = text.replace(
    /^(  knownHosts: .*\n)/m,
    `$1  transport: oci\n  oci: { registry: "127.0.0.1:${port}", repository: fleet, caFile: pki/ca.pem, siteCaches: { "${cached}": "127.0.0.1:${cachePort}" } }\n`,
  );
  const fleet = loadInventoryBytes(Buffer.from(text), path.join(dir, 'fleet.yaml'));
  const flux = fleet.active.filter(runsFlux);
  console.log(
    `fleet ${fleet.name}: ${fleet.active.length} devices, ${flux.length} running Flux, ${fleet.sites.length} sites (cache at ${cached}); ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' / ')}`,
  );

  // the GitOps tree edgeforge writes for it (public keys made fast, as keys init makes them), committed
  const pub = (name: string): PgpPublic => {
    const k = fastGenerateV4Key({ name, email: `${name.replace(/[^a-z0-9]/gi, '')}@example.com`, date: '2026-01-01T00:00:00Z' });
    return { fingerprint: k.fingerprint, publicArmored: k.publicKeyArmored };
  };
  const keys: GitopsPublicKeys = {
    deviceSops: new Map(flux.map((d) => [d.id, pub(d.id)])),
    siteSops: new Map(fleet.sites.map((x) => [x.id, pub(x.id)])),
    admins: [{ ...pub('admin'), name: 'admin' }],
  };
  const repo = path.join(dir, 'fleet-repo');
  const git = (...a: string[]) => execFileSync(tool('git'), ['-C', repo, '-c', 'user.name=bench', '-c', 'user.email=bench@example.com', ...a], { encoding: 'utf8', maxBuffer: 64 << 20 });
  mkdirSync(repo);
  for (const f of renderGitopsScaffold(fleet, keys, {})) {
    mkdirSync(path.dirname(path.join(repo, f.path)), { recursive: true });
    writeFileSync(path.join(repo, f.path), f.bytes);
  }
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-qm', 'edgeforge gitops');

  // the registry side, as `edgeforge registry config` writes it
  const pulls = flux.map((d) => registryPullRecord(d, fleet, fixedSecretsFor(d).deployKey!.privateKey)!);
  const host = (p: number, realm: number, name: string) => ({
    addr: `127.0.0.1:${p}`,
    storageDir: path.join(dir, 'storage', name),
    tlsCert: certs.cert,
    tlsKey: certs.key,
    realm: `https://127.0.0.1:${realm}/token`,
  });
  const reg = path.join(dir, 'registry');
  await writeRegistryConfig({ to: reg, fleet, pulls, central: host(port, issuerPort, 'central'), site: () => host(cachePort, siteIssuerPort, 'cache') });
  const tls = { cert: readFileSync(certs.cert, 'utf8'), key: readFileSync(certs.key, 'utf8') };
  const siteDir = path.join(reg, 'sites', ...cached.split('/'));
  for (const [d, p] of [
    [path.join(reg, 'central'), issuerPort],
    [siteDir, siteIssuerPort],
  ] as const) {
    const i = await startTokenIssuer({ accessFile: path.join(d, 'issuer/access.json'), keyPem: readFileSync(path.join(d, 'issuer/token.key'), 'utf8'), tls, port: p });
    stops.push(() => i.close());
  }
  const central = await startRegistry(path.join(reg, 'central/config.yml'), port);
  stops.push(() => central.stop());
  const cache = await startRegistry(path.join(siteDir, 'config.yml'), cachePort, { SSL_CERT_FILE: certs.ca });
  stops.push(() => cache.stop());
  const ca = readFileSync(certs.ca, 'utf8');
  const publisher = { host: `127.0.0.1:${port}`, ca, username: PUBLISHER_USER, password: readFileSync(path.join(reg, 'central/publisher.password'), 'utf8').trim() };

  // commit 1: everything published once (what a fleet starts from)
  let t = performance.now();
  const first = await publish({ fleet, tree: await readTreeAtHead(repo, 'main'), endpoint: publisher });
  const firstMs = performance.now() - t;
  // every device fetches its site's artifact once
  const pullAll = async (changed: Set<string>) => {
    const limit = pLimit(CONCURRENCY);
    let received = 0;
    let requests = 0;
    await Promise.all(
      flux.map((d) =>
        limit(async () => {
          const c = new RegistryClient({
            host: d.siteId === cached ? `127.0.0.1:${cachePort}` : `127.0.0.1:${port}`,
            ca,
            username: d.id,
            password: registryPullPassword(fixedSecretsFor(d).deployKey!.privateKey),
          });
          try {
            const r = siteRepository(fleet, d);
            const m = await c.manifest(r, 'latest', OCI_MANIFEST_MEDIA_TYPE);
            if (changed.has(d.siteId)) await c.blob(r, JSON.parse(m!.bytes.toString('utf8')).layers[0].digest);
          } finally {
            received += c.traffic.received;
            requests += c.traffic.requests;
            c.close();
          }
        }),
      ),
    );
    return { received, requests };
  };
  await pullAll(new Set(fleet.sites.map((x) => x.id)));

  // commit 2: one site's overlay changes
  const site = fleet.sites.find((x) => x.id !== cached && x.devices.some(runsFlux))!;
  appendFileSync(path.join(repo, 'overlays/sites', site.region, site.name, 'kustomization.yaml'), '# a change at one site\n');
  git('commit', '-qam', `${site.id}: one change`);
  const tree = await readTreeAtHead(repo, 'main');
  t = performance.now();
  const second = await publish({ fleet, tree, endpoint: publisher });
  const secondMs = performance.now() - t;
  const logMark = central.requests().length;
  t = performance.now();
  const polled = await pullAll(new Set([site.id]));
  const pollMs = performance.now() - t;
  await new Promise((r) => setTimeout(r, 500)); // the access log lags its responses
  const servedByCentral = central
    .requests()
    .slice(logMark)
    .reduce((n, q) => n + q.bytes, 0);
  const artifact = second.pushed[0];
  const siteDevices = site.devices.filter(runsFlux).length;

  // the anchor: a shallow clone of the same commit by git, as each Git device makes for every commit
  const clones: { ms: number; bytes: number }[] = [];
  for (let i = 0; i < CLONES; i++) {
    const to = path.join(dir, `clone-${i}`);
    t = performance.now();
    execFileSync(tool('git'), ['clone', '-q', '--depth', '1', '--no-local', '--single-branch', `file://${repo}`, to]);
    const ms = performance.now() - t;
    const packs = path.join(to, '.git/objects/pack');
    const bytes = readdirSync(packs)
      .filter((f) => f.endsWith('.pack'))
      .reduce((n, f) => n + statSync(path.join(packs, f)).size, 0);
    clones.push({ ms, bytes });
    rmSync(to, { recursive: true, force: true });
  }
  clones.sort((a, b) => a.ms - b.ms);
  const clone = clones[Math.floor(clones.length / 2)];
  const gitBytes = flux.length * clone.bytes;

  console.log(`\ntree: ${tree.files.length} files; ${fleet.sites.length} site artifacts published in ${s(firstMs)} (${mb(first.sentBytes)} sent)`);
  console.log(
    `commit 2 (${site.id} only): publish ${s(secondMs)}, ${second.pushed.length} artifact pushed (${artifact.layer.bytes} bytes layer), ${second.unchanged.length} unchanged, ${second.sentBytes} bytes sent in ${second.requests} requests`,
  );
  console.log('\n| per commit that changes one site | bytes from the central host | wall time | source |');
  console.log('|---|---|---|---|');
  console.log(
    `| anchor: Git, ${flux.length} devices x \`git clone --depth 1\` | ${mb(gitBytes)} (${clone.bytes} bytes each) | ${s(clone.ms)} per clone (median of ${CLONES}), so ~${s((clone.ms * flux.length) / CONCURRENCY)} for all ${CONCURRENCY} at once (extrapolated) | pack size of real clones x devices |`,
  );
  console.log(
    `| OCI: ${flux.length} devices poll, ${siteDevices} fetch their site's artifact | ${mb(polled.received)} (registry ${mb(servedByCentral)} by its access log, the rest tokens) | ${s(pollMs)} for all (${CONCURRENCY} at once, measured) | registry access log; clients received ${mb(polled.received)} in ${polled.requests} requests (per device: the 401 that names the issuer, a token, the manifest; the changed site's devices also the layer) |`,
  );
  console.log(
    `\nGit / OCI bytes from the central host: ${(gitBytes / Math.max(1, polled.received)).toFixed(0)}x fewer with OCI (goal >= 100x); the changed site's WAN: ${mb(siteDevices * clone.bytes)} (Git) vs ${mb(siteDevices * artifact.layer.bytes)} (OCI, no cache) or ${mb(artifact.layer.bytes)} (with a site cache)`,
  );
  const cacheLines = cache.requests().filter((q) => q.method === 'GET' && q.path.includes('/blobs/')).length;
  console.log(
    `site cache ${cached}: served ${cacheLines} blob request(s) to its devices; central blob GETs for its repository: ${central.requests().filter((q) => q.method === 'GET' && q.path.startsWith(`/v2/${siteRepository(fleet, { region: cached.split('/')[0], site: cached.split('/')[1] })}/blobs/`)).length}`,
  );
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
