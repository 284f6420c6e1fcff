// The device bundle: the files `provision` delivers to one device, taken from a build's manifest.json.
// Pure (no I/O): the build, the seed and provision compute the same bundle hash from the same files,
// and the first-boot program records that hash on the device (applied.json "bundleSha256").
//
// Definition (agreed with render/build, scripts/render/device.ts):
//   files  = the device's artifacts under devices/<id>/bundle/ (= /var/lib/edgeforge/bundle/ on the device);
//            for a manifest without a bundle/ directory: every artifact of the device except
//            seed-image / disk-delta / bmap (whole-disk carriers, delivered by flashing)
//   rel    = the path inside the bundle directory (after "devices/<id>/bundle/", or "devices/<id>/")
//   SHA256SUMS = for each file sorted by rel (byte order): "<sha256>  <rel>\n" (sha256sum's own format,
//            so `sha256sum -c SHA256SUMS` checks a delivered bundle with stock tools); the build writes
//            it as bundle/SHA256SUMS itself, and provision checks that it lists exactly these files
//   bundle hash = sha256(SHA256SUMS) — what the first-boot program records (`sha256sum $BUNDLE/SHA256SUMS`),
//            so "already applied?" is one string comparison.
import { sha256Hex } from '../util/hash.ts';

// What provision reads of manifest.json: the reader's view of scripts/pipeline/manifest.ts's types, checked at
// load (checkManifest) — it requires only the fields it uses, so the writer can grow without breaking it.
export interface ManifestArtifact {
  kind: string;
  path: string;
  sha256: string;
  bytes: number;
  secret: boolean;
}

export interface ManifestDevice {
  id: string;
  region?: string;
  site?: string;
  profile?: string;
  artifacts: ManifestArtifact[];
}

export interface Manifest {
  format: string;
  fleet: string;
  devices: ManifestDevice[];
  [k: string]: unknown;
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

/** The name of the checksum list inside the bundle (written by provision; not a manifest artifact). */
export const SUMS_NAME = 'SHA256SUMS';

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

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The SHA256SUMS text for a set of files (sorted by rel, byte order). */
export function bundleSums(files: readonly { rel: string; sha256: string }[]): string {
  return [...files]
    .sort((a, b) => byteOrder(a.rel, b.rel))
    .map((f) => `${f.sha256}  ${f.rel}\n`)
    .join('');
}

/** The bundle hash: sha256 over the sorted (rel, sha256) list, serialized as SHA256SUMS. */
export function bundleHash(files: readonly { rel: string; sha256: string }[]): string {
  return sha256Hex(bundleSums(files));
}

/** The bundle of one manifest device. Throws BundleError when the manifest cannot make one. */
export function deviceBundle(device: ManifestDevice): DeviceBundle {
  const files: BundleFile[] = [];
  const seen = new Map<string, string>();
  const layered = device.artifacts.some((a) => a.path.startsWith(`devices/${device.id}/bundle/`));
  let builtSums: ManifestArtifact | undefined;
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
    throw new BundleError(`the build's ${builtSums.path} does not list exactly the device's bundle files in the manifest (its sha256 ${builtSums.sha256}, expected ${hash}); rebuild with edgeforge build`);
  }
  return { id: device.id, files, sums, hash, firstboot: fb[0].rel, bytes: files.reduce((n, f) => n + f.bytes, 0) };
}

/** Minimal shape check of a parsed manifest.json (the build signs it; provision reads only these fields). */
export function checkManifest(data: unknown, where: string): Manifest {
  const m = data as Manifest;
  if (!m || typeof m !== 'object' || typeof m.format !== 'string' || !m.format.startsWith('edgeforge-manifest/')) {
    throw new BundleError(`${where}: not an edgeforge manifest (no "format": "edgeforge-manifest/1")`);
  }
  if (m.format !== 'edgeforge-manifest/1') throw new BundleError(`${where}: manifest format ${m.format} is newer than this edgeforge understands; upgrade edgeforge`);
  if (!Array.isArray(m.devices)) throw new BundleError(`${where}: "devices" is missing`);
  for (const d of m.devices) {
    if (!d || typeof d.id !== 'string' || !Array.isArray(d.artifacts)) throw new BundleError(`${where}: a device entry has no id or artifacts`);
  }
  return m;
}
