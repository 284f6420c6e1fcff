// Writing manifest.json. Pure: the same build gives the same bytes (devices in inventory order, artifacts by
// path, no timestamps but SOURCE_DATE_EPOCH).
import { MANIFEST_FORMAT, type Manifest } from './types.ts';

export function buildManifest(m: Omit<Manifest, 'format'>, order: string[]): Manifest {
  const pos = new Map(order.map((id, i) => [id, i]));
  const devices = [...m.devices]
    .sort((a, b) => (pos.get(a.id) ?? Infinity) - (pos.get(b.id) ?? Infinity) || (a.id < b.id ? -1 : 1))
    .map((d) => ({
      id: d.id,
      region: d.region,
      site: d.site,
      profile: d.profile,
      ...(d.inputs ? { inputs: d.inputs } : {}),
      artifacts: [...d.artifacts].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
      ...(d.registry ? { registry: d.registry } : {}),
    }));
  // key order as SPEC.md shows it
  return {
    format: MANIFEST_FORMAT,
    fleet: m.fleet,
    inventorySha256: m.inventorySha256,
    sourceDateEpoch: m.sourceDateEpoch,
    ...(m.baseImage ? { baseImage: m.baseImage } : {}),
    ...(m.gitops ? { gitops: m.gitops } : {}),
    ...(m.oci ? { oci: m.oci } : {}),
    ...(m.os ? { os: m.os } : {}),
    devices,
  };
}

export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}
