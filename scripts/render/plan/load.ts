// The central-load section: what the fleet asks of the central Git host, the registries and the status broker.
// One row per metric, one column per transport, so a second transport (an OCI registry) is one more
// entry in TRANSPORTS with the same metric keys, and its numbers stand beside Git's.
import type { Fleet } from '../../inventory/fleet.ts';
import { runsFlux } from '../flux/sync.ts';
import { devicePollInterval, parseDuration } from '../flux/jitter.ts';
import { human, num } from './md.ts';
import { siteLayer } from '../oci/artifact.ts';
import type { TarFile } from '../oci/tar.ts';

/** The GitOps tree as it would be fetched: measured with real `git` by the shell (pipeline/gitops/measure.ts). */
export interface TreeFetch {
  /** bytes of `git pack-objects` for the tree's one commit: what a depth-1 clone transfers */
  packBytes: number;
  files: number;
  treeBytes: number;
  /** `git --version` of the measurement */
  git: string;
  /** where the tree came from */
  from: string;
}

/**
 * The same measurement for generated fleets (npm run bench:gitfetch, BENCHMARKS.md "GitOps tree fetch"), as a
 * line: pack bytes ≈ FIXED + PER_DEVICE × Flux devices. Used only when this fleet's own tree was not measured.
 */
export const TREE_FETCH_MODEL = {
  fixedBytes: 18065,
  perFluxDeviceBytes: 1462,
  source: 'npm run bench:gitfetch (BENCHMARKS.md), 2026-12-07, git 2.39.5: the example fleet (12 Flux devices) 35.6 KB and a generated 2,000-device fleet (1,805) 2.66 MB',
};

export interface LoadInputs {
  treeFetch?: TreeFetch;
  /** the OCI artifact of each site, built from the same tree exactly as `edgeforge publish` builds it (siteArtifactSizes) */
  siteArtifacts?: SiteArtifactSize[];
  /** bytes of the k3s-upgrade image, when the shell could read its pinned archive */
  upgradeImageBytes?: number;
}

export type MetricKey = 'pollsPerDay' | 'pollsPerSec' | 'idlePerDay' | 'perCommitDevice' | 'perCommitCentral' | 'perCommitSiteWan' | 'statusPerSec' | 'rolloutPulls';

export const LOAD_METRICS: { key: MetricKey; label: string }[] = [
  { key: 'pollsPerDay', label: 'polls a day at the central host' },
  { key: 'pollsPerSec', label: 'polls per second (mean)' },
  { key: 'idlePerDay', label: 'bytes a day when nothing changes' },
  { key: 'perCommitDevice', label: 'bytes one device fetches per commit' },
  { key: 'perCommitCentral', label: 'bytes the central host serves per commit' },
  { key: 'perCommitSiteWan', label: "bytes over one site's WAN per commit (the site with the most)" },
  { key: 'statusPerSec', label: 'status messages per second' },
  { key: 'rolloutPulls', label: 'bytes per K3s rollout (k3s-upgrade image pulls from outside the sites)' },
];

export interface Cell {
  value: string;
  basis: string;
}

export interface Transport {
  name: string;
  metrics(fleet: Fleet, inp: LoadInputs): Record<MetricKey, Cell>;
}

/** One unchanged poll of a Git repository over SSH: handshake + ref advertisement — an estimate (the SSH handshake dominates), not measured. */
export const BYTES_PER_IDLE_POLL = 7 * 1024;

function fetchBytes(fluxDevices: number, inp: LoadInputs): Cell {
  if (inp.treeFetch)
    return {
      value: human(inp.treeFetch.packBytes),
      basis: `measured: \`git pack-objects\` of ${inp.treeFetch.from} (${num(inp.treeFetch.files)} files, ${human(inp.treeFetch.treeBytes)}), ${inp.treeFetch.git}`,
    };
  if (TREE_FETCH_MODEL.source) {
    const b = TREE_FETCH_MODEL.fixedBytes + TREE_FETCH_MODEL.perFluxDeviceBytes * fluxDevices;
    return {
      value: `≈ ${human(b)}`,
      basis: `not measured for this tree: ${human(TREE_FETCH_MODEL.fixedBytes)} + ${human(TREE_FETCH_MODEL.perFluxDeviceBytes)} per Flux device, from ${TREE_FETCH_MODEL.source}; \`edgeforge plan --gitops DIR\` measures this fleet's`,
    };
  }
  return { value: 'not measured', basis: 'run `edgeforge build` (it writes OUT/gitops) or pass `--gitops DIR`' };
}

/** One site's WAN per commit: what crosses it for each of its sites, and the site that carries the most. */
function siteWan(sites: { id: string; wan: number; how: string }[], rest: string): Cell {
  const top = [...sites].sort((a, b) => b.wan - a.wan)[0];
  if (!top) return { value: '0', basis: 'no Flux device' };
  return { value: human(top.wan), basis: `${top.id}: ${top.how}; ${rest}` };
}

export const GIT_TRANSPORT: Transport = {
  name: 'Git over SSH (Flux GitRepository)',
  metrics(fleet, inp) {
    const mirrors = fleet.gitops.mirrors ?? {};
    const flux = fleet.active.filter(runsFlux);
    const central = flux.filter((d) => !mirrors[d.siteId]);
    const mirroredSites = fleet.sites.filter((s) => mirrors[s.id] && s.devices.some(runsFlux));
    // a site mirror polls the central host at the fleet's interval, like one device
    const pollsPerDay = central.reduce((a, d) => a + 86400 / devicePollInterval(d.id, fleet.gitops.interval).seconds, 0) + mirroredSites.length * (86400 / parseDuration(fleet.gitops.interval));
    const perDevice = fetchBytes(flux.length, inp);
    const packBytes = inp.treeFetch?.packBytes ?? (TREE_FETCH_MODEL.source ? TREE_FETCH_MODEL.fixedBytes + TREE_FETCH_MODEL.perFluxDeviceBytes * flux.length : undefined);
    const st = fleet.status;
    const nodesOutside = fleet.active.filter((d) => !d.registryMirror).length;
    const sitesWithCache = fleet.sites.filter((s) => s.devices.some((d) => d.status === 'active' && d.registryMirror)).length;
    const pulls = nodesOutside + sitesWithCache;
    const perSite = fleet.sites
      .map((s) => ({ s, n: s.devices.filter((d) => flux.includes(d)).length, mirror: Boolean(mirrors[s.id]) }))
      .filter((x) => x.n > 0)
      .map(({ s, n, mirror }) => ({
        id: s.id,
        wan: (mirror ? 1 : n) * (packBytes ?? 0),
        how: mirror ? 'one fetch by its Git mirror (at most a full pack)' : `${n} device clone(s) × ${packBytes === undefined ? 'the pack' : human(packBytes)}`,
      }));
    return {
      pollsPerDay: {
        value: num(pollsPerDay),
        basis: `${central.length} device(s) polling the central host every ${fleet.gitops.interval} + their offset${mirroredSites.length ? `, and ${mirroredSites.length} site mirror(s) at the same interval` : ''}`,
      },
      pollsPerSec: { value: (pollsPerDay / 86400).toFixed(2), basis: 'polls a day / 86,400' },
      idlePerDay: {
        value: `≈ ${human(pollsPerDay * BYTES_PER_IDLE_POLL)}`,
        basis: `${BYTES_PER_IDLE_POLL / 1024} KB per unchanged poll: an estimate, not measured, that counts the SSH handshake (key exchange, authentication) and the ref advertisement`,
      },
      perCommitDevice: { value: perDevice.value, basis: `a depth-1 clone of the whole tree (source-controller clones every new revision; ignore rules apply after the fetch): ${perDevice.basis}` },
      perCommitCentral:
        packBytes !== undefined
          ? {
              value: human(central.length * packBytes + mirroredSites.length * packBytes),
              basis: `${central.length} device clone(s)${mirroredSites.length ? ` + ${mirroredSites.length} mirror fetch(es) (at most a full pack each; an incremental fetch is smaller)` : ''} × ${human(packBytes)}`,
            }
          : { value: 'not measured', basis: perDevice.basis },
      perCommitSiteWan:
        packBytes !== undefined
          ? siteWan(
              perSite,
              `every commit crosses every site's WAN (each device clones the whole tree)${mirroredSites.length ? `; a site with a Git mirror carries one fetch` : '; a site Git mirror (gitops.mirrors) would make it one fetch'}`,
            )
          : { value: 'not measured', basis: perDevice.basis },
      statusPerSec: st
        ? { value: (fleet.active.length / st.periodSec).toFixed(2), basis: `${num(fleet.active.length)} devices, one report every ${st.period} (${st.periodSource}), spread over the period` }
        : { value: '0', basis: 'status reporting off' },
      rolloutPulls: {
        value: inp.upgradeImageBytes ? human(pulls * inp.upgradeImageBytes) : `${num(pulls)} × the image`,
        basis: `${num(nodesOutside)} node(s) without a site registry mirror pull it themselves, ${sitesWithCache} site mirror(s) once each${inp.upgradeImageBytes ? `; ${human(inp.upgradeImageBytes)} per pull (the pinned archive's size)` : '; its size is not in the inventory (pin its archive in k3s.upgrade.images to have it counted)'}`,
      },
    };
  },
};

/** A site's OCI artifact (its gzipped layer) as publish would push it for this tree. */
export interface SiteArtifactSize {
  /** "<region>/<site>" */
  site: string;
  bytes: number;
}

/** Each site's artifact size from the tree's files: pure (render/oci/artifact.ts builds the layer publish pushes). */
export function siteArtifactSizes(fleet: Fleet, tree: TarFile[]): SiteArtifactSize[] {
  return fleet.sites.filter((s) => s.devices.some(runsFlux)).map((s) => ({ site: s.id, bytes: siteLayer(tree, { region: s.region, site: s.name }).blob.bytes.length }));
}

/**
 * One unchanged OCI poll as measured by `npm run bench:publish` (BENCHMARKS.md, 2026-12-07: 1,805 devices, Debian's
 * docker-registry 2.8.2 and edgeforge's token issuer): the 401 that names the issuer, a token, the manifest —
 * response bodies only (scripts/registry/client.ts counts bodies), no TLS handshake, no HTTP headers.
 */
export const BYTES_PER_IDLE_OCI_POLL = 1500;

export const OCI_TRANSPORT: Transport = {
  name: 'OCI artifacts (Flux OCIRepository)',
  metrics(fleet, inp) {
    const git = GIT_TRANSPORT.metrics(fleet, inp);
    const flux = fleet.active.filter(runsFlux);
    const caches = fleet.gitops.oci?.siteCaches ?? {};
    // a site cache asks the central registry for the tag on every device poll (distribution 2.8's proxy caches blobs, not tags)
    const pollsPerDay = flux.reduce((a, d) => a + 86400 / devicePollInterval(d.id, fleet.gitops.interval).seconds, 0);
    const sizes = new Map((inp.siteArtifacts ?? []).map((a) => [a.site, a.bytes]));
    const sites = fleet.sites.map((s) => ({ id: s.id, devices: s.devices.filter((d) => flux.includes(d)).length, bytes: sizes.get(s.id), cached: Boolean(caches[s.id]) })).filter((s) => s.devices > 0);
    const measured = inp.siteArtifacts !== undefined && sites.every((s) => s.bytes !== undefined);
    const how = "each site's artifact built from the tree exactly as `edgeforge publish` builds it";
    const notMeasured: Cell = { value: 'not measured', basis: 'no GitOps tree: run `edgeforge build` (it writes OUT/gitops) or pass `--gitops DIR`' };
    const largest = [...sites].sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0))[0];
    const central = (s: (typeof sites)[number]) => (s.cached ? 1 : s.devices) * (s.bytes ?? 0);
    const oneSite = [...sites].sort((a, b) => central(b) - central(a))[0];
    const cachedSites = sites.filter((s) => s.cached).length;
    const wan = sites.map((s) => ({
      id: s.id,
      wan: central(s),
      how: s.cached ? `one fetch of its ${human(s.bytes ?? 0)} artifact by its site cache` : `${s.devices} device(s) × its ${human(s.bytes ?? 0)} artifact, no site cache`,
    }));
    // docs/gitops.md: with a cache the WAN carries one fetch per change, but distribution 2.8 reads a blob upstream
    // twice on a cold cache, and concurrent first requests each go upstream (BENCHMARKS.md): one fetch is the floor
    const cacheNote = cachedSites
      ? "only when that site's content changed; through a site cache one fetch per change is the floor: distribution 2.8 reads a blob from upstream twice on a cold cache, and devices asking at once before it is stored each go upstream (docs/gitops.md, BENCHMARKS.md)"
      : "only when that site's content changed; a site cache (gitops.oci.siteCaches) would carry it about once per change";
    return {
      pollsPerDay: {
        value: num(pollsPerDay),
        basis: `${flux.length} device(s) every ${fleet.gitops.interval} + their offset, each a tag check at the central registry${cachedSites ? ` (through ${cachedSites} site cache(s): distribution 2.8 checks the tag upstream on every request)` : ''}`,
      },
      pollsPerSec: { value: (pollsPerDay / 86400).toFixed(2), basis: 'polls a day / 86,400' },
      idlePerDay: {
        value: `≈ ${human(pollsPerDay * BYTES_PER_IDLE_OCI_POLL)}`,
        basis: `${(BYTES_PER_IDLE_OCI_POLL / 1000).toFixed(1)} KB per unchanged poll, measured by npm run bench:publish as HTTP response bodies only (the 401 naming the issuer, the token answer, the manifest): TLS handshakes and HTTP headers are not counted, so this and the Git estimate do not count the same things`,
      },
      perCommitDevice: measured && largest ? { value: human(largest.bytes!), basis: `its site's artifact, only when that site's content changed (largest: ${largest.id}); ${how}` } : notMeasured,
      perCommitCentral:
        measured && oneSite
          ? {
              value: human(sites.reduce((a, s) => a + central(s), 0)),
              basis: `a change every site reads: each site's artifact to each of its devices${cachedSites ? `, once to each of ${cachedSites} site cache(s)` : ''}; a change to one site: ${human(central(oneSite))} (${oneSite.id})`,
            }
          : notMeasured,
      perCommitSiteWan: measured ? siteWan(wan, cacheNote) : notMeasured,
      statusPerSec: git.statusPerSec,
      rolloutPulls: git.rolloutPulls,
    };
  },
};

/** The transports the section compares, side by side (gitops.transport picks the one devices use). */
export const TRANSPORTS: Transport[] = [GIT_TRANSPORT, OCI_TRANSPORT];

export function loadSection(cols: Record<MetricKey, Cell>[], table: (h: string[], r: (string | number | undefined)[][]) => string): string[] {
  const o: string[] = [];
  o.push(
    table(
      ['', ...TRANSPORTS.map((t) => t.name), 'basis'],
      LOAD_METRICS.map((m) => [`**${m.label}**`, ...cols.map((c) => c[m.key].value), [...new Set(cols.map((c) => c[m.key].basis))].join(' / ')]),
    ),
    '',
  );
  return o;
}
