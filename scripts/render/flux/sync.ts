// The objects that make a device pull: a GitRepository (the fleet repo, its own jittered interval) and its
// Kustomizations: `flux-system` (Flux's own components and these sync objects, from the device's
// flux-system/ directory, so Flux upgrades itself from Git), `sops-keys`, `join-tokens` (a multi-node server),
// `system-upgrade` (the K3s upgrade controller) and `upgrades` (its site's Plans, once the controller runs) and
// `device` (the device's entry point clusters/<region>/<site>/<device>: prune, wait, SOPS). The same objects go
// into the K3s bootstrap and into Git (gotk-sync.yaml), so once Flux reconciles itself nothing changes hands.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { devicePollInterval } from './jitter.ts';
import { FLUX_CONTENT_MEDIA_TYPE, OCI_TAG, ociPullHost, ociSettingsProblems, siteRepository, usesOci } from '../oci/format.ts';

export const FLUX_NS = 'flux-system';
/** Secret with identity / identity.pub / known_hosts for the Git deploy key */
export const GIT_SECRET = 'flux-system';
/** OCI transport: the CA of the registry (and site caches), pinned; the pull credential is GIT_SECRET's name */
export const REGISTRY_CA_SECRET = 'registry-ca';
/** Secret with the OpenPGP private key(s) kustomize-controller decrypts SOPS files with */
export const SOPS_SECRET = 'sops-gpg';
export const DEVICE_KUSTOMIZATION = 'device';
/**
 * Kustomization that applies the device's own SOPS keys (`sops-gpg`) from Git, decrypted with the device key
 * alone. `device` depends on it, so after a site-key rotation the new key is in place before `device`
 * decrypts site secrets re-encrypted to it — also on a device that was offline for weeks (docs/gitops.md).
 */
export const SOPS_KEYS_KUSTOMIZATION = 'sops-keys';

/** Tuned for links that drop for minutes at a time (see docs/gitops.md, "Flaky links"). */
export const SYNC_TUNING = {
  /** a shallow clone of the whole repository over a slow uplink can take more than Flux's 60s default */
  gitTimeout: '2m',
  /** drift correction: re-apply from the local artifact (no network) */
  deviceInterval: '10m',
  /** after a failure: sooner than the interval, not so soon that a dead link is hammered */
  retryInterval: '2m',
  /** apply + health checks; image pulls over a weak link are the slow part */
  deviceTimeout: '10m',
  selfInterval: '30m',
  selfTimeout: '5m',
} as const;

/** The K3s upgrade controller's manifests: one copy per repository, applied by every server. */
export const UPGRADE_CONTROLLER_PATH = 'infrastructure/system-upgrade';
export const UPGRADE_CONTROLLER_KUSTOMIZATION = 'system-upgrade';
export const UPGRADES_KUSTOMIZATION = 'upgrades';

/** A site's K3s upgrade Plans. */
export function upgradesPath(s: { region: string; name?: string; site?: string }): string {
  return `upgrades/${s.region}/${s.name ?? s.site}`;
}

/** Where a device's entry point lives in the GitOps repository. */
export function devicePath(d: Pick<ResolvedDevice, 'region' | 'site' | 'id'>): string {
  return `clusters/${d.region}/${d.site}/${d.id}`;
}

/** Flux needs ssh:// URLs; the inventory also allows scp-like "git@host:org/repo.git". */
export function fluxGitUrl(url: string): string {
  if (url.startsWith('ssh://')) return url;
  const m = /^([a-z0-9._-]+)@([^\s:/]+):(.+)$/.exec(url);
  if (!m) throw new Error(`gitops.url "${url}" is not an SSH Git URL`);
  return `ssh://${m[1]}@${m[2]}/${m[3].replace(/^\/+/, '')}`;
}

/** The host name as it must appear in known_hosts: "host", or "[host]:port" for a non-22 port. */
export function knownHostsName(url: string): string {
  const u = new URL(fluxGitUrl(url));
  return u.port && u.port !== '22' ? `[${u.hostname}]:${u.port}` : u.hostname;
}

/** Where a device pulls from: its site's mirror when the inventory names one, else the central repository. */
export function gitSource(fleet: Pick<Fleet, 'gitops'>, d?: Pick<ResolvedDevice, 'siteId'>): { url: string; knownHosts: string; where: string } {
  const m = d ? fleet.gitops.mirrors?.[d.siteId] : undefined;
  return m ? { url: m.url, knownHosts: m.knownHosts, where: `gitops.mirrors["${d!.siteId}"]` } : { url: fleet.gitops.url, knownHosts: fleet.gitops.knownHosts, where: 'gitops' };
}

/**
 * The pinned known_hosts line exactly as the inventory has it (one trailing newline), after checking it names
 * the host the URL connects to. For a device at a mirrored site: the mirror's line.
 */
export function pinnedKnownHosts(fleet: Pick<Fleet, 'gitops'>, d?: Pick<ResolvedDevice, 'siteId'>): string {
  const src = gitSource(fleet, d);
  const line = src.knownHosts.trim();
  const hosts = line.split(/\s+/)[0];
  const want = knownHostsName(src.url);
  if (!hosts.startsWith('|1|') && !hosts.split(',').includes(want)) {
    throw new Error(`${src.where}.knownHosts names "${hosts}" but ${src.where}.url connects to "${want}": Flux would refuse the host key. Pin the key of ${want}.`);
  }
  return line + '\n';
}

/** Inventory problems only the GitOps side can see; for validate/plan to report before a build fails. */
export function gitopsSourceProblems(fleet: Pick<Fleet, 'gitops' | 'sites'>): string[] {
  const out: string[] = [];
  const sites = new Set(fleet.sites.map((s) => s.id));
  for (const id of Object.keys(fleet.gitops.mirrors ?? {})) {
    if (!sites.has(id)) out.push(`gitops.mirrors["${id}"]: no such site in the inventory (sites are "<region>/<site>", e.g. ${[...sites][0] ?? 'eu-central/plant-1'})`);
  }
  for (const d of [undefined, ...fleet.sites.filter((s) => fleet.gitops.mirrors?.[s.id]).map((s) => ({ siteId: s.id }))]) {
    try {
      pinnedKnownHosts(fleet, d);
    } catch (e) {
      out.push((e as Error).message);
    }
  }
  out.push(...ociSettingsProblems(fleet));
  return out;
}

/**
 * What source-controller packs into the artifact: other regions and other sites are left out, so a
 * 10,000-device repository gives each device an artifact the size of its own site, not the fleet.
 */
export function sourceIgnore(d: Pick<ResolvedDevice, 'region' | 'site'>): string {
  return [
    "# only this device's region and site of clusters/ and overlays/ (edgeforge)",
    '/clusters/*/',
    `!/clusters/${d.region}/`,
    `/clusters/${d.region}/*/`,
    `!/clusters/${d.region}/${d.site}/`,
    '/overlays/regions/*/',
    `!/overlays/regions/${d.region}/`,
    '/overlays/sites/*/',
    `!/overlays/sites/${d.region}/`,
    `/overlays/sites/${d.region}/*/`,
    `!/overlays/sites/${d.region}/${d.site}/`,
    '/upgrades/*/',
    `!/upgrades/${d.region}/`,
    `/upgrades/${d.region}/*/`,
    `!/upgrades/${d.region}/${d.site}/`,
    '',
  ].join('\n');
}

/**
 * The device's source object: its name, its own jittered interval and the timeout shared by both transports, then
 * what the kind adds. Key order fixed so the rendered YAML stays byte-for-byte the same.
 */
function sourceObject(kind: 'GitRepository' | 'OCIRepository', d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>, spec: Record<string, unknown>): Record<string, unknown> {
  const poll = devicePollInterval(d.id, fleet.gitops.interval);
  return {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind,
    metadata: {
      name: FLUX_NS,
      namespace: FLUX_NS,
      annotations: { 'edgeforge.dev/poll-interval': `${fleet.gitops.interval} + ${poll.offsetSeconds}s per-device jitter` },
    },
    spec: { interval: poll.text, timeout: SYNC_TUNING.gitTimeout, ...spec },
  };
}

export function gitRepository(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>): Record<string, unknown> {
  return sourceObject('GitRepository', d, fleet, { url: fluxGitUrl(gitSource(fleet, d).url), ref: { branch: fleet.gitops.branch }, secretRef: { name: GIT_SECRET }, ignore: sourceIgnore(d) });
}

/**
 * OCI transport: the device's site artifact (`edgeforge publish`), through its site cache when there is one.
 * Same name, interval (with the device's jitter) and timeout as the GitRepository; the registry's CA pinned;
 * the pull credential (the device's own, dockerconfigjson) in the Secret the Git transport keeps its deploy key in.
 */
export function ociRepository(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>): Record<string, unknown> {
  return sourceObject('OCIRepository', d, fleet, {
    url: `oci://${ociPullHost(fleet, d)}/${siteRepository(fleet, d)}`,
    ref: { tag: OCI_TAG },
    layerSelector: { mediaType: FLUX_CONTENT_MEDIA_TYPE, operation: 'extract' },
    secretRef: { name: GIT_SECRET },
    certSecretRef: { name: REGISTRY_CA_SECRET },
  });
}

/** The device's source: a GitRepository, or with gitops.transport oci an OCIRepository of the same name. */
export function fluxSource(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>): Record<string, unknown> {
  return usesOci(fleet) ? ociRepository(d, fleet) : gitRepository(d, fleet);
}

/** Flux's own components and sync objects, from the device's flux-system/ directory. No wait: it may be upgrading itself. */
export function selfKustomization(d: ResolvedDevice): Record<string, unknown> {
  return fluxKustomization(FLUX_NS, { interval: SYNC_TUNING.selfInterval, timeout: SYNC_TUNING.selfTimeout, path: `./${devicePath(d)}/flux-system`, prune: true, wait: false });
}

/** Where `revoke` and `keys rotate --site` deliver a device's new site key: its own directory, beside flux-system/. */
export function sopsKeysPath(d: Pick<ResolvedDevice, 'region' | 'site' | 'id'>): string {
  return `${devicePath(d)}/sops-keys`;
}

/**
 * The device's SOPS keys from Git. Decrypts with the `sops-gpg` it is updating: the file is encrypted to the
 * device key, which that Secret has held since the build. No prune: dropping the file must never delete the
 * Secret every other decryption needs.
 */
export function sopsKeysKustomization(d: ResolvedDevice): Record<string, unknown> {
  return decryptingKustomization(SOPS_KEYS_KUSTOMIZATION, `./${sopsKeysPath(d)}`, { prune: false, dependsOn: FLUX_NS });
}

export const JOIN_TOKENS_KUSTOMIZATION = 'join-tokens';

/**
 * A multi-node server's agents: one bootstrap-token Secret per active agent and the objects that shut a revoked
 * agent out (render/gitops/join-tokens.ts). prune: true — a token file removed from Git is a token deleted.
 */
export function joinTokensSync(d: ResolvedDevice): Record<string, unknown> {
  return decryptingKustomization(JOIN_TOKENS_KUSTOMIZATION, `./${devicePath(d)}/join-tokens`, { prune: true, dependsOn: SOPS_KEYS_KUSTOMIZATION });
}

/** A small SOPS-decrypting Kustomization of the device's own source: no wait, one dependency. */
function decryptingKustomization(name: string, path: string, o: { prune: boolean; dependsOn: string }): Record<string, unknown> {
  return fluxKustomization(name, { interval: SYNC_TUNING.deviceInterval, timeout: SYNC_TUNING.selfTimeout, path, prune: o.prune, wait: false, dependsOn: [o.dependsOn], decrypt: true });
}

/**
 * Every Kustomization of a device: its own GitRepository, the shared retry interval, optional dependencies, SOPS
 * decryption and substitutions. The keys keep one order so the rendered YAML stays byte-for-byte the same.
 */
function fluxKustomization(
  name: string,
  s: { interval: string; timeout: string; path: string; prune: boolean; wait: boolean; dependsOn?: string[]; decrypt?: boolean; postBuild?: Record<string, unknown> },
): Record<string, unknown> {
  return {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: { name, namespace: FLUX_NS },
    spec: {
      interval: s.interval,
      retryInterval: SYNC_TUNING.retryInterval,
      timeout: s.timeout,
      path: s.path,
      prune: s.prune,
      wait: s.wait,
      ...(s.dependsOn ? { dependsOn: s.dependsOn.map((n) => ({ name: n })) } : {}),
      sourceRef: { kind: 'GitRepository', name: FLUX_NS },
      ...(s.decrypt ? { decryption: { provider: 'sops', secretRef: { name: SOPS_SECRET } } } : {}),
      ...(s.postBuild ? { postBuild: s.postBuild } : {}),
    },
  };
}

/**
 * The K3s upgrade controller, waited for: it registers the Plan CRD itself when it starts (edgeforge ships no
 * copy, so the two never overwrite each other), and the site's Plans can only be applied once that CRD exists.
 */
export function upgradeControllerSync(): Record<string, unknown> {
  return fluxKustomization(UPGRADE_CONTROLLER_KUSTOMIZATION, {
    interval: SYNC_TUNING.deviceInterval,
    timeout: SYNC_TUNING.selfTimeout,
    path: `./${UPGRADE_CONTROLLER_PATH}`,
    prune: true,
    wait: true,
    dependsOn: [FLUX_NS],
  });
}

/** The site's upgrade Plans, after the controller is up (a first apply before its CRD exists is retried). */
export function upgradesSync(d: Pick<ResolvedDevice, 'region' | 'site'>): Record<string, unknown> {
  return fluxKustomization(UPGRADES_KUSTOMIZATION, {
    interval: SYNC_TUNING.deviceInterval,
    timeout: SYNC_TUNING.selfTimeout,
    path: `./${upgradesPath(d)}`,
    prune: true,
    wait: false,
    dependsOn: [UPGRADE_CONTROLLER_KUSTOMIZATION],
  });
}

/** The device's desired state: clusters/<region>/<site>/<device>. */
export function deviceKustomization(d: ResolvedDevice, fleet: Pick<Fleet, 'name'>): Record<string, unknown> {
  return fluxKustomization(DEVICE_KUSTOMIZATION, {
    interval: SYNC_TUNING.deviceInterval,
    timeout: SYNC_TUNING.deviceTimeout,
    path: `./${devicePath(d)}`,
    prune: true,
    wait: true,
    // sops-keys first: a rotated site key must be in sops-gpg before site secrets re-encrypted to it are read
    dependsOn: [FLUX_NS, SOPS_KEYS_KUSTOMIZATION],
    decrypt: true,
    // ${DEVICE_ID} etc. in manifests; opt a resource out with kustomize.toolkit.fluxcd.io/substitute: disabled
    postBuild: {
      substitute: {
        FLEET: fleet.name,
        REGION: d.region,
        SITE: d.site,
        DEVICE_ID: d.id,
        PROFILE: d.profileName,
        RAM_MIB: String(d.profile.ramMiB),
        CANARY: String(d.canary),
      },
    },
  });
}

/** The source + the Kustomizations (join-tokens only on a multi-node server), in apply order. */
export function fluxSyncObjects(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops' | 'name'>): Record<string, unknown>[] {
  const agents = d.cluster.kind === 'multi-node-server' ? [joinTokensSync(d)] : [];
  const ks = [selfKustomization(d), sopsKeysKustomization(d), ...agents, upgradeControllerSync(), upgradesSync(d), deviceKustomization(d, fleet)];
  // the artifact keeps the repository's paths, so only the kind of the source changes
  if (usesOci(fleet)) for (const k of ks) ((k.spec as Record<string, unknown>).sourceRef as Record<string, unknown>).kind = 'OCIRepository';
  return [fluxSource(d, fleet), ...ks];
}

/** Devices that run Flux: every server (single-node or the server of a multi-node site). Agents join a server's cluster. */
export function runsFlux(d: ResolvedDevice): boolean {
  return d.status === 'active' && d.cluster.kind !== 'multi-node-agent';
}
