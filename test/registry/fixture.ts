// A fleet on the OCI transport with everything real around it: the example inventory pulling from a central
// registry (Debian's docker-registry on loopback, TLS from a throwaway CA) behind edgeforge's token issuer,
// one site behind a pull-through cache (a second docker-registry in proxy mode with its own issuer), the
// GitOps tree committed in a real Git repository, and each device's own pull credential.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tool } from '../../scripts/testkit/tools.ts';
import { freePort, makeTestCerts } from '../../scripts/testkit/mosquitto.ts';
import { startRegistry, type RunningRegistry } from '../../scripts/testkit/registry.ts';
import { startTokenIssuer, type RunningIssuer } from '../../scripts/registry/token-issuer.ts';
import { writeRegistryConfig } from '../../scripts/registry/write-config.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import type { RegistryPull } from '../../scripts/manifest/types.ts';
import { registryPullRecord } from '../../scripts/render/flux/secrets.ts';
import { runsFlux } from '../../scripts/render/flux/sync.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { registryPullPassword } from '../../scripts/keys/registry-pull.ts';
import { renderGitopsScaffold } from '../../scripts/render/gitops/index.ts';
import { exampleInventoryText, fleetKeys } from '../gitops/fixtures.ts';
import type { Endpoint } from '../../scripts/registry/client.ts';

export const CACHED_SITE = 'eu-central/brno-warehouse-1';

export interface OciWorld {
  dir: string;
  fleet: Fleet;
  inventoryFile: string;
  ca: string;
  repoDir: string;
  central: RunningRegistry;
  cache: RunningRegistry;
  issuers: RunningIssuer[];
  configDir: string;
  pulls: RegistryPull[];
  /** the publisher's endpoint (central registry, its password from registry config) */
  publisher: Endpoint;
  /** a device's endpoint: the host it pulls from (its site cache or the central registry), its own credential */
  device(id: string): Endpoint;
  /** write the registry config again for these pulls (a revoke leaves the device out) */
  reconfigure(pulls: RegistryPull[]): Promise<void>;
  git(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startOciWorld(): Promise<OciWorld> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-oci-'));
  const certs = makeTestCerts(path.join(dir, 'pki'), ['IP:127.0.0.1', 'DNS:localhost']);
  const [centralPort, cachePort, centralIssuerPort, siteIssuerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const oci = `  transport: oci\n  oci:\n    registry: 127.0.0.1:${centralPort}\n    repository: fleet\n    caFile: pki/ca.pem\n    siteCaches: { "${CACHED_SITE}": "127.0.0.1:${cachePort}" }\n`;
  const text = exampleInventoryText({ mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' }, (t) => t.replace(/^(  knownHosts: .*\n)/m, `$1${oci}`));
  const inventoryFile = path.join(dir, 'inventory.yaml');
  writeFileSync(inventoryFile, text);
  const fleet = loadInventoryBytes(Buffer.from(text), inventoryFile);

  const pulls = fleet.active.filter(runsFlux).map((d) => registryPullRecord(d, fleet, fixedSecretsFor(d).deployKey!.privateKey)!);
  const configDir = path.join(dir, 'registry');
  const host = (addr: number, realm: number, name: string) => ({
    addr: `127.0.0.1:${addr}`,
    storageDir: path.join(dir, 'storage', name),
    tlsCert: certs.cert,
    tlsKey: certs.key,
    realm: `https://127.0.0.1:${realm}/token`,
  });
  const configure = (p: RegistryPull[]) =>
    writeRegistryConfig({ to: configDir, fleet, pulls: p, central: host(centralPort, centralIssuerPort, 'central'), site: () => host(cachePort, siteIssuerPort, 'cache') });
  await configure(pulls);

  const tls = { cert: readFileSync(certs.cert, 'utf8'), key: readFileSync(certs.key, 'utf8') };
  const siteDir = path.join(configDir, 'sites', ...CACHED_SITE.split('/'));
  const issuers = [
    await startTokenIssuer({
      accessFile: path.join(configDir, 'central/issuer/access.json'),
      keyPem: readFileSync(path.join(configDir, 'central/issuer/token.key'), 'utf8'),
      tls,
      port: centralIssuerPort,
    }),
    await startTokenIssuer({ accessFile: path.join(siteDir, 'issuer/access.json'), keyPem: readFileSync(path.join(siteDir, 'issuer/token.key'), 'utf8'), tls, port: siteIssuerPort }),
  ];
  const central = await startRegistry(path.join(configDir, 'central/config.yml'), centralPort);
  // the cache fetches from the central registry and its issuer with Go's TLS: it trusts the fleet CA through SSL_CERT_FILE
  const cache = await startRegistry(path.join(siteDir, 'config.yml'), cachePort, { SSL_CERT_FILE: certs.ca });

  const repoDir = path.join(dir, 'fleet-repo');
  mkdirSync(repoDir);
  const git = (...args: string[]) =>
    execFileSync(tool('git'), ['-C', repoDir, ...args], {
      encoding: 'utf8',
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' },
    });
  git('init', '-q', '-b', 'main');
  const { keys } = await fleetKeys(fleet);
  for (const f of renderGitopsScaffold(fleet, keys, {})) {
    mkdirSync(path.dirname(path.join(repoDir, f.path)), { recursive: true });
    writeFileSync(path.join(repoDir, f.path), f.bytes);
  }
  git('add', '-A');
  git('commit', '-qm', 'edgeforge gitops');

  const ca = readFileSync(certs.ca, 'utf8');
  const byId = new Map<string, ResolvedDevice>(fleet.active.map((d) => [d.id, d]));
  return {
    dir,
    fleet,
    inventoryFile,
    ca,
    repoDir,
    central,
    cache,
    issuers,
    configDir,
    pulls,
    publisher: { host: `127.0.0.1:${centralPort}`, ca, username: 'edgeforge-publish', password: readFileSync(path.join(configDir, 'central/publisher.password'), 'utf8').trim() },
    device(id) {
      const d = byId.get(id)!;
      return { host: d.siteId === CACHED_SITE ? `127.0.0.1:${cachePort}` : `127.0.0.1:${centralPort}`, ca, username: id, password: registryPullPassword(fixedSecretsFor(d).deployKey!.privateKey) };
    },
    reconfigure: async (p) => void (await configure(p)),
    git,
    async stop() {
      await Promise.all([central.stop(), cache.stop(), ...issuers.map((i) => i.close())]);
    },
  };
}
