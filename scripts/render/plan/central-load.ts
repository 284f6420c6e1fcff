// What the central side carries for each transport, derived from the fleet and the GitOps tree just written
// (pure): polls a day, bytes from the central host per commit and over a site's WAN. Git: every Flux device
// makes a shallow clone of the whole repository for every commit (source-controller keeps no clone), sized
// here as the gzip of the tree (what a depth-1 pack of it compresses to; `npm run bench:publish` measures the
// real pack beside it). OCI: a device fetches its site's artifact only when that site's content changed
// (the layer built exactly as `edgeforge publish` builds it); through a site cache the WAN carries it once.
import { gzipSync } from 'node:zlib';
import type { Fleet } from '../../inventory/fleet.ts';
import { devicePollInterval } from '../flux/jitter.ts';
import { runsFlux } from '../flux/sync.ts';
import { siteLayer } from '../oci/artifact.ts';
import { tarArchive, type TarFile } from '../oci/tar.ts';

export interface TransportLoad {
  pollsPerDay: number;
  /** a commit that changes one site's files (the largest site): bytes the central host sends */
  oneSiteCommitBytes: number;
  /** a commit that changes what every site reads (apps/base, infrastructure/): bytes the central host sends */
  fleetWideCommitBytes: number;
  /** the largest site's WAN per commit that changes it */
  siteWanBytes: number;
  how: string;
}

export interface CentralLoad {
  fluxDevices: number;
  treeFiles: number;
  /** gzip of the whole tree: what each Git device fetches per commit */
  treeGzipBytes: number;
  /** per site: Flux devices and the size of its OCI artifact's layer */
  sites: { site: string; devices: number; artifactBytes: number; cached: boolean }[];
  git: TransportLoad;
  oci: TransportLoad;
}

export function centralLoad(fleet: Fleet, tree: TarFile[]): CentralLoad {
  const files = tree.filter((f) => !f.path.startsWith('.git/'));
  const treeGzipBytes = gzipSync(tarArchive(files), { level: 9 }).length;
  const devices = fleet.active.filter(runsFlux);
  let pollsPerDay = 0;
  for (const d of devices) pollsPerDay += 86400 / devicePollInterval(d.id, fleet.gitops.interval).seconds;
  const caches = fleet.gitops.oci?.siteCaches ?? {};
  const mirrors = fleet.gitops.mirrors ?? {};
  const sites = fleet.sites
    .map((s) => ({ site: s.id, devices: s.devices.filter((d) => devices.includes(d)).length, artifactBytes: siteLayer(files, { region: s.region, site: s.name }).blob.bytes.length, cached: Boolean(caches[s.id]) }))
    .filter((s) => s.devices > 0);
  const largest = sites.reduce((a, b) => (b.devices * b.artifactBytes > a.devices * a.artifactBytes ? b : a), sites[0] ?? { site: '', devices: 0, artifactBytes: 0, cached: false });
  const ociSite = (s: (typeof sites)[number]) => (s.cached ? 1 : s.devices) * s.artifactBytes;
  const gitSite = (s: (typeof sites)[number]) => (mirrors[s.site] ? 0 : s.devices * treeGzipBytes);
  const gitAll = sites.reduce((n, s) => n + gitSite(s), 0);
  return {
    fluxDevices: devices.length,
    treeFiles: files.length,
    treeGzipBytes,
    sites,
    git: {
      pollsPerDay: Math.round(pollsPerDay),
      // every commit is a new revision for every device: a one-site commit costs what a fleet-wide one does
      oneSiteCommitBytes: gitAll,
      fleetWideCommitBytes: gitAll,
      siteWanBytes: largest.devices * treeGzipBytes,
      how: `each Flux device clones the whole tree (${files.length} files, gzip ${treeGzipBytes} bytes) for every commit${Object.keys(mirrors).length ? '; sites with a Git mirror fetch the commit once (not counted)' : ''}`,
    },
    oci: {
      pollsPerDay: Math.round(pollsPerDay),
      oneSiteCommitBytes: ociSite(largest),
      fleetWideCommitBytes: sites.reduce((n, s) => n + ociSite(s), 0),
      siteWanBytes: largest.artifactBytes * (largest.cached ? 1 : largest.devices),
      how: `a device fetches its site's artifact only when it changed (largest site ${largest.site}: ${largest.devices} device(s) x ${largest.artifactBytes} bytes${largest.cached ? ', once through its cache' : ''}); an unchanged poll is one manifest request`,
    },
  };
}
