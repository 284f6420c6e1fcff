// OUT/manifest.json: the index of a build and the only thing other tools read (SPEC.md). Pure: the
// same build gives the same bytes (devices in inventory order, artifacts by path, no timestamps but
// SOURCE_DATE_EPOCH).
import type { ArtifactKind } from '../render/files.ts';
import type { FleetBaseManifest } from './airgap.ts';

export const MANIFEST_FORMAT = 'edgeforge-manifest/1';

export interface ManifestArtifact {
  kind: ArtifactKind | 'other';
  /** relative to OUT */
  path: string;
  sha256: string;
  bytes: number;
  secret: boolean;
}

export interface ManifestDevice {
  id: string;
  region: string;
  site: string;
  profile: string;
  /** sha256 of everything this device's files were rendered from (pipeline/inputs.ts): a rebuild whose inputs
   *  hash the same skips the device. Absent in builds made before it existed (they are rendered again). */
  inputs?: string;
  artifacts: ManifestArtifact[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  fleet: string;
  inventorySha256: string;
  sourceDateEpoch: number;
  /** the --base-image file as given; fleetBase: what the deltas apply to when an airgap partition was added */
  baseImage?: { path: string; sha256: string; fleetBase?: FleetBaseManifest };
  gitops?: { path: string };
  devices: ManifestDevice[];
}

export function buildManifest(m: Omit<Manifest, 'format'>, order: string[]): Manifest {
  const pos = new Map(order.map((id, i) => [id, i]));
  const devices = [...m.devices]
    .sort((a, b) => (pos.get(a.id) ?? Infinity) - (pos.get(b.id) ?? Infinity) || (a.id < b.id ? -1 : 1))
    .map((d) => ({ id: d.id, region: d.region, site: d.site, profile: d.profile, ...(d.inputs ? { inputs: d.inputs } : {}), artifacts: [...d.artifacts].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) }));
  // key order as SPEC.md shows it
  return {
    format: MANIFEST_FORMAT,
    fleet: m.fleet,
    inventorySha256: m.inventorySha256,
    sourceDateEpoch: m.sourceDateEpoch,
    ...(m.baseImage ? { baseImage: m.baseImage } : {}),
    ...(m.gitops ? { gitops: m.gitops } : {}),
    devices,
  };
}

export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}
