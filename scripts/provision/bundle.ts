// The device bundle: the files `provision` delivers to one device, taken from a build's manifest.json.
// Pure (no I/O): the build, the seed and provision compute the same bundle hash from the same files
// (the rule is scripts/manifest/sums.ts), and the first-boot program records that hash on the device
// (applied.json "bundleSha256").
//
//   files  = the device's artifacts under devices/<id>/bundle/ (= /var/lib/edgeforge/bundle/ on the device);
//            for a manifest without a bundle/ directory: every artifact of the device except
//            seed-image / disk-delta / bmap (whole-disk carriers, delivered by flashing)
//   rel    = the path inside the bundle directory (after "devices/<id>/bundle/", or "devices/<id>/")
//   the build writes bundle/SHA256SUMS itself; provision checks that it lists exactly these files.
import { sha256Hex } from '../util/hash.ts';
import { bundleSums, byteOrder, SUMS_NAME } from '../manifest/sums.ts';
import type { ManifestArtifact } from '../manifest/types.ts';

/** What a bundle is made from: a manifest device (ManifestDevice), or any list of artifacts like it. */
export interface BundleSource {
  id: string;
  artifacts: readonly (Omit<ManifestArtifact, 'kind'> & { kind: string })[];
}

export interface BundleFile {
  kind: string;
  /** path relative to the build output directory (manifest path) */
  source: string;
  /** path inside the bundle directory on the device */
  rel: string;
  sha256: string;
  bytes: number;
  secret: boolean;
  /** 0600 for secrets, 0644 otherwise */
  mode: number;
}

export interface DeviceBundle {
  id: string;
  files: BundleFile[];
  /** the SHA256SUMS text delivered beside the files */
  sums: string;
  /** sha256 of `sums` */
  hash: string;
  /** rel of the first-boot program */
  firstboot: string;
  bytes: number;
}

/** Artifact kinds that carry whole disks or seed volumes: delivered by flashing, never over SSH. */
export const NOT_IN_BUNDLE: ReadonlySet<string> = new Set(['seed-image', 'disk-delta', 'bmap']);

const SAFE_REL = /^[A-Za-z0-9_.+-]+(\/[A-Za-z0-9_.+-]+)*$/;

export class BundleError extends Error {}

/** Where an artifact sits inside the bundle (`layered`: the device has a bundle/ directory). */
export function bundleRel(deviceId: string, artifactPath: string, layered = artifactPath.startsWith(`devices/${deviceId}/bundle/`)): string {
  const prefix = layered ? `devices/${deviceId}/bundle/` : `devices/${deviceId}/`;
  if (!artifactPath.startsWith(prefix)) throw new BundleError(`artifact ${artifactPath} of device ${deviceId} is not under ${prefix}; the manifest is not from edgeforge build`);
  const rel = artifactPath.slice(prefix.length);
  // rel names a file on the device and appears in SHA256SUMS: keep it plain
  if (!SAFE_REL.test(rel) || rel.split('/').some((s) => s === '.' || s === '..')) {
    throw new BundleError(`artifact path ${artifactPath} of device ${deviceId} has characters a device path must not have (letters, digits, . _ + - and / only)`);
  }
  return rel;
}

/** The bundle of one manifest device. Throws BundleError when the manifest cannot make one. */
export function deviceBundle(device: BundleSource): DeviceBundle {
  const files: BundleFile[] = [];
  const seen = new Map<string, string>();
  const layered = device.artifacts.some((a) => a.path.startsWith(`devices/${device.id}/bundle/`));
  let builtSums: BundleSource['artifacts'][number] | undefined;
  for (const a of device.artifacts) {
    if (layered ? !a.path.startsWith(`devices/${device.id}/bundle/`) : NOT_IN_BUNDLE.has(a.kind)) continue;
    if (!/^[0-9a-f]{64}$/.test(a.sha256)) throw new BundleError(`artifact ${a.path} of device ${device.id} has no valid sha256 in the manifest`);
    const rel = bundleRel(device.id, a.path, layered);
    if (rel === SUMS_NAME) {
      builtSums = a;
      continue;
    }
    const clash = seen.get(rel);
    if (clash) throw new BundleError(`artifacts ${clash} and ${a.path} of device ${device.id} land on the same bundle path ${rel}`);
    seen.set(rel, a.path);
    files.push({ kind: a.kind, source: a.path, rel, sha256: a.sha256, bytes: a.bytes, secret: Boolean(a.secret), mode: a.secret ? 0o600 : 0o644 });
  }
  files.sort((a, b) => byteOrder(a.rel, b.rel));
  const fb = files.filter((f) => f.kind === 'firstboot');
  if (fb.length !== 1) {
    throw new BundleError(`device ${device.id} has ${fb.length} first-boot programs in the manifest (artifact kind "firstboot"); expected exactly one — rebuild with edgeforge build`);
  }
  const sums = bundleSums(files);
  const hash = sha256Hex(sums);
  if (builtSums && builtSums.sha256 !== hash) {
    throw new BundleError(
      `the build's ${builtSums.path} does not list exactly the device's bundle files in the manifest (its sha256 ${builtSums.sha256}, expected ${hash}); rebuild with edgeforge build`,
    );
  }
  return { id: device.id, files, sums, hash, firstboot: fb[0].rel, bytes: files.reduce((n, f) => n + f.bytes, 0) };
}
