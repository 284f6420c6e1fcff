// OUT/manifest.json (format edgeforge-manifest/1): the index of a build and the only thing other tools read
// (SPEC.md). These types are the one definition; write.ts makes one, read.ts checks one, sums.ts holds the
// bundle-hash rule its bundle/SHA256SUMS artifacts follow.

import type { DataRange } from '../util/sparse.ts';

export const MANIFEST_FORMAT = 'edgeforge-manifest/1';
export const MANIFEST_NAME = 'manifest.json';

/** What an artifact is, as listed in the manifest (anything else is 'other'). */
export type ArtifactKind = 'user-data' | 'meta-data' | 'network-config' | 'seed-image' | 'k3s-config' | 'k3s-registries' | 'flux-bootstrap' | 'firstboot' | 'disk-delta' | 'bmap';

export interface ManifestArtifact {
  kind: ArtifactKind | 'other';
  /** relative to OUT */
  path: string;
  sha256: string;
  bytes: number;
  secret: boolean;
  /**
   * A file written with holes (util/sparse.ts): its data ranges — every other byte reads as zero — and the sha256
   * of their bytes in order, so a verifier hashes the data and checks the rest is zeros. `sha256` is still the whole
   * file's. Absent for files written whole, and in builds made before it existed (verify then hashes the file).
   */
  sparse?: { data: DataRange[]; sha256: string };
}

export interface ManifestDevice {
  id: string;
  region: string;
  site: string;
  profile: string;
  /** sha256 of everything this device's files were rendered from (pipeline/select/inputs-hash.ts): a rebuild
   *  whose inputs hash the same skips the device. Absent in builds made before it existed (rendered again). */
  inputs?: string;
  artifacts: ManifestArtifact[];
  /** OCI transport: the device's registry pull credential as the token issuer checks it (never the password) */
  registry?: RegistryPull;
}

/** A device's pull credential, public part: the repository it may read, its user name, sha256 of its password. */
export interface RegistryPull {
  repository: string;
  username: string;
  verifier: string;
}

/** What `edgeforge publish` pushed: one artifact per site, content-addressed (docs/gitops.md, "OCI transport"). */
export interface OciPublishRecord {
  /** the central registry, host[:port] */
  registry: string;
  /** the Git revision of the tree published */
  revision: string;
  artifacts: OciArtifactRecord[];
}

export interface OciArtifactRecord {
  /** "<region>/<site>" */
  site: string;
  repository: string;
  /** the revision tag it carries besides the moving tag */
  tag: string;
  /** the OCI manifest's digest (what a device resolves the tag to) */
  digest: string;
  /** the config blob (Flux's config media type, `{}`); absent in manifests recorded before it was */
  config?: { digest: string; bytes: number };
  /** the content layer (the tarball): unchanged content, unchanged digest, nothing pushed */
  layer: { digest: string; bytes: number };
}

/** The manifest's record of the fleet base (under baseImage.fleetBase): what flash writes besides the deltas. */
export interface FleetBaseManifest {
  /** relative to OUT */
  path: string;
  sha256: string;
  bytes: number;
  /** the airgap partition: where the first-boot program finds the K3s files */
  airgapPartition: { number: number; scheme: 'gpt' | 'mbr'; start: number; size: number; name: string; label: string };
}

/** The manifest's record of the A/B base (under baseImage.abBase, docs/os-updates.md): the input rearranged into two root slots. */
export interface AbBaseManifest {
  /** relative to OUT */
  path: string;
  sha256: string;
  bytes: number;
  layout: 'uefi-gpt' | 'raspi-mbr';
  /** the OS release slot A holds (os.releases: the one made from the input image) */
  version: string;
}

/** OS updates (docs/os-updates.md): every ring's release and the digest of its bundle per layout, as the inventory pins them. */
export interface OsManifest {
  rings: { ring: 'canary' | 'stable'; version: string }[];
  bundles: { version: string; layout: 'uefi-gpt' | 'raspi-mbr'; file: string; sha256: string }[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  fleet: string;
  inventorySha256: string;
  sourceDateEpoch: number;
  /** the --base-image file as given; fleetBase: what the deltas apply to when an airgap partition was added */
  baseImage?: { path: string; sha256: string; fleetBase?: FleetBaseManifest; abBase?: AbBaseManifest };
  gitops?: { path: string };
  /** the last `edgeforge publish` into this build (OCI transport) */
  oci?: OciPublishRecord;
  os?: OsManifest;
  devices: ManifestDevice[];
}
