// The configuration of the registries the OCI transport uses, pure: the central CNCF distribution registry
// (Debian's docker-registry, 2.8) behind edgeforge's token issuer, and per site a second instance of it in
// pull-through mode (`proxy:`) as the site cache, with its own issuer knowing only that site's devices.
// Every device may pull only its site's repository; a site cache only its site's; the publisher pushes under
// the fleet's prefix. The file layout is registry/write-config.ts's.
import type { Fleet } from '../../inventory/fleet.ts';
import type { RegistryPull } from '../../manifest/types.ts';
import { toYamlStream } from '../yaml.ts';
import { ACCESS_FORMAT, type AccessFile, type AccessUser } from './access.ts';
import { ociSettings, siteRepository } from './format.ts';

export const PUBLISHER_USER = 'edgeforge-publish';
export const TOKEN_SERVICE = 'edgeforge-registry';

/** The user a site cache authenticates upstream as. */
export function siteCacheUser(siteId: string): string {
  return `site-cache-${siteId.replace('/', '-')}`;
}

export interface RegistryHostConfig {
  /** listen address, e.g. ":5000" */
  addr: string;
  /** paths on the registry host */
  storageDir: string;
  tlsCert: string;
  tlsKey: string;
  /** the token issuer's URL devices are sent to, https://host:port/token */
  realm: string;
  /** where the issuer's signing certificate is on the registry host */
  rootCertBundle: string;
  /** site cache: the central registry's URL and this cache's upstream credential */
  proxy?: { remoteUrl: string; username: string; password: string };
}

/** distribution's config.yml for the central registry or a site cache. */
export function registryConfigYaml(fleet: Pick<Fleet, 'name'>, c: RegistryHostConfig, role: string): string {
  const doc = {
    version: 0.1,
    log: { level: 'info', fields: { service: 'registry', fleet: fleet.name } },
    storage: { filesystem: { rootdirectory: c.storageDir }, cache: { blobdescriptor: 'inmemory' } },
    http: { addr: c.addr, tls: { certificate: c.tlsCert, key: c.tlsKey }, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    auth: { token: { realm: c.realm, service: TOKEN_SERVICE, issuer: issuerName(role), rootcertbundle: c.rootCertBundle } },
    ...(c.proxy ? { proxy: { remoteurl: c.proxy.remoteUrl, username: c.proxy.username, password: c.proxy.password } } : {}),
  };
  return toYamlStream([doc], `edgeforge:managed: ${role} registry of fleet ${fleet.name} (edgeforge registry config; docs/gitops.md)`);
}

export function issuerName(role: string): string {
  return `edgeforge ${role}`;
}

const deviceUser = (p: RegistryPull): AccessUser => ({ name: p.username, verifier: p.verifier, access: [{ repository: p.repository, actions: ['pull'] }] });

/**
 * The central issuer's access file: every active OCI device (its site's repository, pull), every site cache
 * (its site's repository, pull), the publisher (push and pull under the prefix). `pulls` are the manifest's
 * records of the active devices: a revoked device is not in the build, so it is not here.
 */
export function centralAccess(fleet: Pick<Fleet, 'gitops' | 'sites'>, pulls: RegistryPull[], publisherVerifier: string, cacheVerifiers: Map<string, string>): AccessFile {
  const oci = ociSettings(fleet);
  const caches = fleet.sites
    .filter((s) => cacheVerifiers.has(s.id))
    .map((s) => ({ name: siteCacheUser(s.id), verifier: cacheVerifiers.get(s.id)!, access: [{ repository: siteRepository(fleet, s), actions: ['pull' as const] }] }));
  return {
    format: ACCESS_FORMAT,
    service: TOKEN_SERVICE,
    issuer: issuerName('central'),
    users: [{ name: PUBLISHER_USER, verifier: publisherVerifier, access: [{ repository: `${oci.repository}/*`, actions: ['push', 'pull'] }] }, ...caches, ...pulls.map(deviceUser)],
  };
}

/** A site cache's issuer: that site's devices only. */
export function siteAccess(fleet: Pick<Fleet, 'gitops'>, site: { id: string; region: string; name: string }, pulls: RegistryPull[]): AccessFile {
  const repo = siteRepository(fleet, site);
  return { format: ACCESS_FORMAT, service: TOKEN_SERVICE, issuer: issuerName(`site ${site.id}`), users: pulls.filter((p) => p.repository === repo).map(deviceUser) };
}
