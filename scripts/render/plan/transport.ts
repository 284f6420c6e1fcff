// How the plan names the devices' desired-state source in every section that mentions it (summary, diagrams,
// GitOps, theft): Git over SSH or OCI artifacts (gitops.transport), so an OCI fleet's plan never tells an operator
// to register deploy keys on a Git host its devices never talk to.
import type { Fleet } from '../../inventory/fleet.ts';
import { ociSettings, usesOci } from '../oci/format.ts';
import { counted, num } from './md.ts';

export interface SourceWords {
  oci: boolean;
  /** the central host devices pull from: the Git host or the registry */
  host: string;
  /** "Git git.example" / "registry r.example:5000": the central node of the diagrams */
  central: string;
  /** the at-a-glance row */
  glance: (fluxDevices: number, pollsPerDay: number) => string;
  /** the design line on where desired state comes from */
  design: string;
  /** the per-device credential of the source */
  credential: string;
  /** what an operator sets up on the central side (what needs a person) */
  register: (fluxDevices: number) => string;
  /** what revoking a device needs on the central side */
  revoke: string;
  /** the same, as a step of the theft diagram */
  revokeStep: string;
  /** the edge of the diagrams from a site to its source */
  edge: string;
  /** a site's cache of the source, when it has one (OCI site cache, Git mirror) */
  siteCache: (siteId: string) => boolean;
  siteCacheName: string;
}

const gitHost = (url: string) => new URL(url.replace(/^([a-z0-9._-]+)@([^:/]+):/, 'ssh://$1@$2/')).hostname;

export function sourceWords(fleet: Fleet): SourceWords {
  const g = fleet.gitops;
  if (!usesOci(fleet))
    return {
      oci: false,
      host: gitHost(g.url),
      central: `Git ${gitHost(g.url)}`,
      glance: (n, polls) => `Flux on ${n} device(s), pulling \`${g.url}\` every ${g.interval} (+ per-device offset): ${num(polls)} polls a day`,
      design: 'Devices pull their desired state from Git (Flux); nothing connects into a device for GitOps.',
      credential: 'deploy key',
      register: (n) => `Register ${n} read-only deploy key(s) on the Git host (one per Flux device; \`edgeforge keys list\`).`,
      revoke: "delete the device's read-only deploy key on the Git host (by fingerprint)",
      revokeStep: 'delete its deploy key on the Git host',
      edge: 'Git over SSH, pull',
      siteCache: (id) => Boolean(g.mirrors?.[id]),
      siteCacheName: 'site Git mirror',
    };
  const o = ociSettings(fleet);
  const caches = Object.keys(o.siteCaches ?? {});
  return {
    oci: true,
    host: o.registry,
    central: `registry ${o.registry}`,
    glance: (n, polls) =>
      `Flux on ${n} device(s), pulling their site's OCI artifact \`oci://${o.registry}/${o.repository}/<region>/<site>\`${caches.length ? ` (through the site cache at ${counted(caches, 'site')})` : ''} every ${g.interval} (+ per-device offset): ${num(polls)} polls a day; CI publishes it from \`${g.url}\` (\`edgeforge publish\`)`,
    design: "Devices pull their desired state as their site's OCI artifact from the registry (Flux OCIRepository), published from Git by CI; nothing connects into a device for GitOps.",
    credential: 'registry pull credential',
    register: (n) =>
      `Run the registry and its token issuer${caches.length ? `, and ${caches.length} site cache(s)` : ''}: \`edgeforge registry config\` writes their configuration with ${n} per-device pull credential(s) (one per Flux device) — run it again after every build and revoke; CI runs \`edgeforge publish\` after each merge (docs/gitops.md).`,
    revoke: "run `edgeforge registry config` again so the token issuers refuse the device's pull credential (its last token lapses within 5 minutes)",
    revokeStep: 'run edgeforge registry config again (its pull credential refused)',
    edge: 'OCI artifact, pull',
    siteCache: (id) => Boolean(o.siteCaches?.[id]),
    siteCacheName: 'site cache (OCI)',
  };
}
