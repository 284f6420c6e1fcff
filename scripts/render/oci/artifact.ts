// One site's OCI artifact, built from the fleet repository's files: pure and deterministic (tar.ts, gzip at a
// fixed level), so the same tree gives the same layer digest and publish pushes only sites whose files changed.
// What goes in is what source-controller keeps for the site's devices from Git (their GitRepository's ignore
// rules: this region and site of clusters/, overlays/ and upgrades/, everything shared) minus what no device
// reads (the SOPS public keys, .git). The paths stay the repository's, so every Kustomization keeps its path.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { tarArchive, type TarFile } from './tar.ts';
import { FLUX_CONFIG_MEDIA_TYPE, FLUX_CONTENT_MEDIA_TYPE, OCI_ANNOTATIONS, OCI_MANIFEST_MEDIA_TYPE } from './format.ts';

export interface SiteRef {
  region: string;
  site: string;
}

/** Does this repository path belong in the site's artifact? */
export function inSiteArtifact(p: string, s: SiteRef): boolean {
  const seg = p.split('/');
  if (seg[0] === '.git' || seg[0] === '.sops' || p === '.sops.yaml') return false;
  // a directory per region, then per site, under these roots: keep only this region's and this site's
  const scoped = (depth: number) => (seg.length > depth + 1 && seg[depth] !== s.region) || (seg.length > depth + 2 && seg[depth] === s.region && seg[depth + 1] !== s.site);
  if (seg[0] === 'clusters' || seg[0] === 'upgrades') return !scoped(1);
  if (seg[0] === 'overlays' && seg[1] === 'regions') return !(seg.length > 3 && seg[2] !== s.region);
  if (seg[0] === 'overlays' && seg[1] === 'sites') return !scoped(2);
  return true;
}

export interface ArtifactMeta {
  /** the fleet repository (gitops.url) */
  source: string;
  /** "<branch>@sha1:<commit>", Flux's revision format */
  revision: string;
  /** RFC 3339, from SOURCE_DATE_EPOCH (never the clock: the same inputs give the same manifest) */
  created: string;
}

export interface Blob {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

export interface BuiltArtifact {
  layer: Blob;
  config: Blob;
  /** the OCI image manifest (JSON bytes) and its digest */
  manifest: Blob;
  files: number;
}

export function ociDigest(b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** The gzipped tarball of the site's files: the layer, whose digest says whether the site changed. */
export function siteLayer(tree: TarFile[], s: SiteRef): { blob: Blob; files: number } {
  const files = tree.filter((f) => inSiteArtifact(f.path, s));
  const bytes = gzipSync(tarArchive(files), { level: 9 });
  return { blob: { mediaType: FLUX_CONTENT_MEDIA_TYPE, digest: ociDigest(bytes), bytes }, files: files.length };
}

/** The manifest `flux push artifact` makes: Flux config type, one content layer, source/revision/created. */
export function artifactManifest(layer: Blob, meta: ArtifactMeta): { config: Blob; manifest: Blob } {
  // Flux reads no field of the config; the empty JSON object is OCI's empty descriptor content
  const configBytes = Buffer.from('{}');
  const config: Blob = { mediaType: FLUX_CONFIG_MEDIA_TYPE, digest: ociDigest(configBytes), bytes: configBytes };
  const json = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
    layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.length }],
    annotations: { [OCI_ANNOTATIONS.created]: meta.created, [OCI_ANNOTATIONS.revision]: meta.revision, [OCI_ANNOTATIONS.source]: meta.source },
  };
  const bytes = Buffer.from(JSON.stringify(json));
  return { config, manifest: { mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: ociDigest(bytes), bytes } };
}

export function siteArtifact(tree: TarFile[], s: SiteRef, meta: ArtifactMeta): BuiltArtifact {
  const { blob: layer, files } = siteLayer(tree, s);
  return { layer, ...artifactManifest(layer, meta), files };
}
