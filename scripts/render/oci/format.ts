// The artifact format Flux's OCIRepository reads, and where each site's artifact lives. One home for the media
// types and annotations: they are those of `flux push artifact`, read in fluxcd/pkg oci/constants.go
// (ConfigMediaType, ContentMediaType, Source/Revision/CreatedAnnotation) and oci/client/push.go (an OCI image
// manifest whose config has the Flux config type and whose one layer is the gzipped tarball) @13010c91; the
// same constants since Flux's OCI support (RFC-0003). source-controller extracts the layer its
// layerSelector names (the first one otherwise).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { FluxConfigError } from '../../util/errors.ts';

export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const FLUX_CONFIG_MEDIA_TYPE = 'application/vnd.cncf.flux.config.v1+json';
export const FLUX_CONTENT_MEDIA_TYPE = 'application/vnd.cncf.flux.content.v1.tar+gzip';
export const OCI_ANNOTATIONS = {
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  created: 'org.opencontainers.image.created',
} as const;

/** The moving tag devices follow; each publish also tags the Git revision it was made from. */
export const OCI_TAG = 'latest';

export type OciSettings = NonNullable<Fleet['gitops']['oci']>;

/** The fleet's OCI settings, or a clear error when the transport is oci without them. */
export function ociSettings(fleet: Pick<Fleet, 'gitops'>): OciSettings {
  const o = fleet.gitops.oci;
  if (!o)
    throw new FluxConfigError('gitops.transport is oci but gitops.oci is not set: name the registry, the repository prefix and its CA (gitops.oci: {registry, repository, caFile}; docs/gitops.md)');
  return o;
}

export function usesOci(fleet: Pick<Fleet, 'gitops'>): boolean {
  return fleet.gitops.transport === 'oci';
}

/** A site's repository: one artifact per site, so a site cache fetches each change once for all its devices. */
export function siteRepository(fleet: Pick<Fleet, 'gitops'>, s: { region: string; site?: string; name?: string }): string {
  return `${ociSettings(fleet).repository}/${s.region}/${s.site ?? s.name}`;
}

/** Where a device pulls from: its site's cache when the inventory names one, else the central registry. */
export function ociPullHost(fleet: Pick<Fleet, 'gitops'>, d: Pick<ResolvedDevice, 'siteId'>): string {
  const o = ociSettings(fleet);
  return o.siteCaches?.[d.siteId] ?? o.registry;
}

/** Git tags are free text; an OCI tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. */
export function revisionTag(revision: string): string {
  const t = revision.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[.-]+/, '');
  return (t || 'revision').slice(0, 128);
}

/** Inventory problems of the OCI transport, for validate (sites that do not exist, a missing block). */
export function ociSettingsProblems(fleet: Pick<Fleet, 'gitops' | 'sites'>): string[] {
  if (!usesOci(fleet)) return [];
  if (!fleet.gitops.oci) return ['gitops.transport is oci but gitops.oci is not set: name the registry, the repository prefix and its CA (gitops.oci: {registry, repository, caFile})'];
  const sites = new Set(fleet.sites.map((s) => s.id));
  return Object.keys(fleet.gitops.oci.siteCaches ?? {})
    .filter((id) => !sites.has(id))
    .map((id) => `gitops.oci.siteCaches["${id}"]: no such site in the inventory (sites are "<region>/<site>", e.g. ${[...sites][0] ?? 'eu-central/plant-1'})`);
}
