// The two Secrets a device's Flux needs, from secrets handed in by the caller (scripts/keys makes them):
// `flux-system` (Git deploy key + the pinned known_hosts) and `sops-gpg` (OpenPGP private keys for SOPS).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { FLUX_NS, GIT_SECRET, REGISTRY_CA_SECRET, SOPS_SECRET, pinnedKnownHosts } from './sync.ts';
import { ociPullHost, usesOci } from '../oci/format.ts';
import { registryPullPassword, registryPullVerifier } from '../../keys/registry-pull.ts';
import { siteRepository } from '../oci/format.ts';
import type { RegistryPull } from '../../manifest/types.ts';
import { FluxConfigError } from '../../util/errors.ts';
import { OPENSSH_PRIVATE_BEGIN, PGP_PRIVATE_BEGIN } from '../../keys/ssh.ts';

export interface FluxDeviceSecrets {
  /** the device's Git deploy key, OpenSSH private key format (openssh-key-v1 PEM) */
  deployKeyPrivate: string;
  /** its public line ("ssh-ed25519 AAAA… comment"): also what the Git host must have as a read-only deploy key */
  deployKeyPublic: string;
  /** the device's SOPS key, armored OpenPGP private key without passphrase */
  sopsPrivateArmored: string;
  /** the site's SOPS key: lets the device read secrets encrypted for its site, region or the whole fleet */
  siteSopsPrivateArmored?: string;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const nl = (s: string) => (s.endsWith('\n') ? s : s + '\n');

export function checkFluxSecrets(d: Pick<ResolvedDevice, 'id'>, s: FluxDeviceSecrets): void {
  const bad = (what: string, want: string) => new Error(`device ${d.id}: ${what} is not ${want}; check what the keys stage passed to renderFluxBootstrap`);
  if (!s.deployKeyPrivate.includes(OPENSSH_PRIVATE_BEGIN)) throw bad('deployKeyPrivate', 'an OpenSSH private key');
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+/.test(s.deployKeyPublic.trim())) throw bad('deployKeyPublic', 'an OpenSSH public key line');
  if (!s.sopsPrivateArmored.includes(PGP_PRIVATE_BEGIN)) throw bad('sopsPrivateArmored', 'an armored OpenPGP private key');
  if (s.siteSopsPrivateArmored !== undefined && !s.siteSopsPrivateArmored.includes(PGP_PRIVATE_BEGIN)) throw bad('siteSopsPrivateArmored', 'an armored OpenPGP private key');
}

/** Secret data keys in sops-gpg: kustomize-controller imports every entry ending in ".asc". */
export function sopsSecretKeys(d: Pick<ResolvedDevice, 'id' | 'region' | 'site'>, withSite: boolean): string[] {
  return [`device-${d.id}.asc`, ...(withSite ? [`site-${d.region}-${d.site}.asc`] : [])];
}

/**
 * OCI transport: the device's own pull credential as a dockerconfigjson Secret (user = device id, password
 * derived from its deploy key: keys/registry-pull.ts) for the host it pulls from, and the registry CA, pinned.
 */
function ociSecretObjects(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>, s: FluxDeviceSecrets, registryCa: Uint8Array | undefined, labels: Record<string, string>): Record<string, unknown>[] {
  if (!registryCa) throw new FluxConfigError(`device ${d.id}: gitops.oci.caFile was not read (the build must pass the registry CA)`);
  const host = ociPullHost(fleet, d);
  const password = registryPullPassword(s.deployKeyPrivate);
  const auth = { username: d.id, password, auth: b64(`${d.id}:${password}`) };
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: GIT_SECRET, namespace: FLUX_NS, labels },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': b64(JSON.stringify({ auths: { [host]: auth } })) },
    },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: REGISTRY_CA_SECRET, namespace: FLUX_NS, labels }, type: 'Opaque', data: { 'ca.crt': Buffer.from(registryCa).toString('base64') } },
  ];
}

export function fluxSecretObjects(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>, s: FluxDeviceSecrets, registryCa?: Uint8Array): Record<string, unknown>[] {
  checkFluxSecrets(d, s);
  const labels = { 'app.kubernetes.io/managed-by': 'edgeforge', 'edgeforge.dev/device': d.id };
  const [devKey, siteKey] = sopsSecretKeys(d, s.siteSopsPrivateArmored !== undefined);
  const sopsData: Record<string, string> = { [devKey]: b64(nl(s.sopsPrivateArmored)) };
  if (siteKey) sopsData[siteKey] = b64(nl(s.siteSopsPrivateArmored!));
  const sops = { apiVersion: 'v1', kind: 'Secret', metadata: { name: SOPS_SECRET, namespace: FLUX_NS, labels }, type: 'Opaque', data: sopsData };
  if (usesOci(fleet)) return [...ociSecretObjects(d, fleet, s, registryCa, labels), sops];
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: GIT_SECRET, namespace: FLUX_NS, labels },
      type: 'Opaque',
      // `data`, not `stringData`: K3s re-applies this file until the hand-over and must see no diff
      data: {
        identity: b64(nl(s.deployKeyPrivate)),
        'identity.pub': b64(nl(s.deployKeyPublic.trim())),
        known_hosts: b64(pinnedKnownHosts(fleet, d)),
      },
    },
    sops,
  ];
}

/** The manifest's record of an OCI device's pull credential (what the token issuer checks), or undefined. */
export function registryPullRecord(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>, deployKeyPrivate: string | undefined): RegistryPull | undefined {
  if (!usesOci(fleet) || d.status !== 'active' || d.cluster.kind === 'multi-node-agent' || !deployKeyPrivate) return undefined;
  return { repository: siteRepository(fleet, d), username: d.id, verifier: registryPullVerifier(registryPullPassword(deployKeyPrivate)) };
}
