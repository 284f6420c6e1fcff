// `edgeforge registry config --to DIR`: writes the central registry's and each site cache's configuration
// (render/oci/registry-config.ts) with their token issuers' access files, signing keys and certificates.
// Keys, certificates and passwords are made once and kept: running it again (after a revoke, a new device or
// site) rewrites only the access files and configs, so the issuers take the change without a restart.
//
//   DIR/central/config.yml                 the central registry (distribution 2.8) behind the issuer
//   DIR/central/issuer/{access.json,token.key,token.pem}
//   DIR/central/publisher.password         CI's push credential (0600)
//   DIR/sites/<region>/<site>/config.yml   the site cache (proxy: the central registry; holds its upstream password, 0600)
//   DIR/sites/<region>/<site>/issuer/{access.json,token.key,token.pem}
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import type { RegistryPull } from '../manifest/types.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { centralAccess, registryConfigYaml, siteAccess, siteCacheUser } from '../render/oci/registry-config.ts';
import { ociSettings } from '../render/oci/format.ts';
import { selfSignedCertificate } from './cert.ts';

export interface HostSettings {
  /** listen address of the registry, e.g. ":5000" or "127.0.0.1:5000" */
  addr: string;
  storageDir: string;
  tlsCert: string;
  tlsKey: string;
  /** the issuer's URL as devices reach it */
  realm: string;
}

export interface RegistryConfigOptions {
  to: string;
  fleet: Fleet;
  /** the active devices' pull records (the signed build manifest) */
  pulls: RegistryPull[];
  central: HostSettings;
  /** a site cache's settings ("<region>/<site>" of gitops.oci.siteCaches) */
  site: (siteId: string, host: string) => HostSettings;
  now?: Date;
}

export interface RegistryConfigResult {
  central: { dir: string; users: number };
  sites: { id: string; dir: string; users: number }[];
  /** credentials made by this run (files, never their contents) */
  created: string[];
}

const verifier = (p: string) => createHash('sha256').update(p, 'utf8').digest('hex');

async function readOr(file: string, make: () => string, mode: number, created: string[]): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const v = make();
  await writeFileAtomic(file, v, { mode });
  created.push(file);
  return v;
}

/** The issuer's signing key and certificate in `dir` (made when missing). */
async function issuerKey(dir: string, cn: string, now: Date, created: string[]): Promise<{ keyFile: string; certFile: string }> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.pem');
  const keyPem = await readOr(keyFile, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600, created);
  await readOr(certFile, () => selfSignedCertificate(createPrivateKey(keyPem), cn, now, 3650, randomBytes(16)), 0o644, created);
  return { keyFile, certFile };
}

export async function writeRegistryConfig(o: RegistryConfigOptions): Promise<RegistryConfigResult> {
  const now = o.now ?? new Date();
  const created: string[] = [];
  const oci = ociSettings(o.fleet);
  const to = path.resolve(o.to);
  const password = () => randomBytes(32).toString('base64url');

  // site caches first: the central access file lists their upstream users
  const cacheVerifiers = new Map<string, string>();
  const sites: RegistryConfigResult['sites'] = [];
  for (const [siteId, host] of Object.entries(oci.siteCaches ?? {})) {
    const site = o.fleet.sites.find((s) => s.id === siteId);
    if (!site) continue; // validate reports it
    const dir = path.join(to, 'sites', site.region, site.name);
    const upstream = (await readOr(path.join(dir, 'upstream.password'), password, 0o600, created)).trim();
    cacheVerifiers.set(siteId, verifier(upstream));
    const k = await issuerKey(path.join(dir, 'issuer'), `edgeforge site ${siteId} token issuer`, now, created);
    const h = o.site(siteId, host);
    const access = siteAccess(o.fleet, site, o.pulls);
    await writeFileAtomic(path.join(dir, 'issuer', 'access.json'), JSON.stringify(access, null, 2) + '\n', { mode: 0o644 });
    const yaml = registryConfigYaml(
      o.fleet,
      { ...h, rootCertBundle: k.certFile, proxy: { remoteUrl: `https://${oci.registry}`, username: siteCacheUser(siteId), password: upstream } },
      `site ${siteId}`,
    );
    await writeFileAtomic(path.join(dir, 'config.yml'), yaml, { mode: 0o600 });
    sites.push({ id: siteId, dir, users: access.users.length });
  }

  const cdir = path.join(to, 'central');
  const publisher = (await readOr(path.join(cdir, 'publisher.password'), password, 0o600, created)).trim();
  const k = await issuerKey(path.join(cdir, 'issuer'), 'edgeforge central token issuer', now, created);
  const access = centralAccess(o.fleet, o.pulls, verifier(publisher), cacheVerifiers);
  await writeFileAtomic(path.join(cdir, 'issuer', 'access.json'), JSON.stringify(access, null, 2) + '\n', { mode: 0o644 });
  await writeFileAtomic(path.join(cdir, 'config.yml'), registryConfigYaml(o.fleet, { ...o.central, rootCertBundle: k.certFile }, 'central'), { mode: 0o644 });
  return { central: { dir: cdir, users: access.users.length }, sites, created };
}
