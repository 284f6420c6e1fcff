// The GitOps repository every device pulls from, as a list of files (pure: no I/O). `build` writes it to
// OUT/gitops; `edgeforge gitops --to DIR` merges it into an operator's working tree (scripts/pipeline/gitops/tree.ts).
//
//   infrastructure/base/                 shared infrastructure (operator)
//   infrastructure/flux-system/<class>/  Flux's own components per sizing class (edgeforge)
//   apps/base/ apps/stable/ apps/canary/ workloads and the two rollout rings (operator)
//   overlays/regions/<region>/           region overlay: infrastructure + region patches (operator)
//   overlays/sites/<region>/<site>/      site overlay: its region + the site's ring (operator)
//   clusters/<region>/<site>/<device>/   the device's entry point: its site overlay (operator) ...
//     flux-system/                       ... and Flux's sync objects for it (edgeforge)
//   .sops.yaml, .sops/                   SOPS recipients and public keys (edgeforge)
// Overlays live beside clusters/, not above the entry points: kustomize refuses a resource directory that
// contains the directory being built ("cycle detected"), so a device can't include ".." as its site.
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';
import { fluxComponentsYaml, type FluxBundleInput } from '../flux/components.ts';
import { sizingClassFor, type SizingClass } from '../flux/sizing.ts';
import { devicePath, fluxSyncObjects, runsFlux } from '../flux/sync.ts';
import { devicePollInterval } from '../flux/jitter.ts';
import { toYaml, toYamlStream } from '../yaml.ts';
import { managedArmor, managedYaml, seedYaml } from './marker.ts';
import { sopsKeysFiles, sopsKeysKustomization } from './site-key.ts';
import { joinTokensKustomization, joinTokensPath } from './join-tokens.ts';
import { missingKeys, renderSopsConfig, type GitopsPublicKeys } from './sops.ts';
import { day2ScaffoldFiles } from '../day2/scaffold.ts';
import { ringOf, type Ring } from '../day2/rings.ts';

export type { GitopsPublicKeys, PgpPublic } from './sops.ts';

export type ScaffoldOwner = 'edgeforge' | 'operator';

export interface ScaffoldFile {
  /** relative to the repository root, forward slashes */
  path: string;
  bytes: Uint8Array;
  /** edgeforge: carries the marker, rewritten on every run; operator: created when missing, never touched again */
  owner: ScaffoldOwner;
}

/** A site's SOPS public key, what admins encrypt the site's secrets to. */
export function siteKeyFile(s: Pick<ResolvedSite, 'region' | 'name'>): string {
  return `.sops/sites/${s.region}/${s.name}.asc`;
}

export function regionOverlay(region: string): string {
  return `overlays/regions/${region}`;
}

export function siteOverlay(s: { region: string; site?: string; name?: string }): string {
  return `overlays/sites/${s.region}/${s.site ?? s.name}`;
}

export function siteRing(s: Pick<ResolvedSite, 'canary'>): Ring {
  return ringOf(s);
}

const kustomization = (fields: Record<string, unknown>) => toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', ...fields });

type Add = (path: string, text: string, owner: ScaffoldOwner) => void;

export function renderGitopsScaffold(fleet: Fleet, keys: GitopsPublicKeys, input: FluxBundleInput = {}): ScaffoldFile[] {
  const problems = missingKeys(fleet, keys);
  if (problems.length) throw new Error(`GitOps scaffold: ${problems.join('; ')}. Run \`edgeforge keys init\` first.`);
  const files: ScaffoldFile[] = [];
  const add: Add = (path, text, owner) => files.push({ path, bytes: Buffer.from(text, 'utf8'), owner });
  const fluxDevices = fleet.active.filter(runsFlux);
  addPublicKeys(add, fleet, keys, fluxDevices);
  addBasesAndRings(add);
  addFluxComponents(add, fleet, fluxDevices, input);
  // K3s upgrades: the upgrade controller and each site's Plans
  for (const f of day2ScaffoldFiles(fleet)) add(f.path, managedYaml(f.body, f.about), 'edgeforge');
  addOverlays(add, fleet);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** the README, SOPS's rules and the public keys it encrypts to (admins, sites, devices) */
function addPublicKeys(add: Add, fleet: Fleet, keys: GitopsPublicKeys, fluxDevices: ResolvedDevice[]): void {
  add('README.md', readme(fleet), 'operator');
  add('.sops.yaml', renderSopsConfig(fleet, keys), 'edgeforge');
  for (const a of [...keys.admins].sort((x, y) => x.fingerprint.localeCompare(y.fingerprint))) add(`.sops/admins/${a.fingerprint.toUpperCase()}.asc`, managedArmor(a.publicArmored), 'edgeforge');
  for (const s of fleet.sites) {
    const k = keys.siteSops.get(s.id);
    if (k && s.devices.some(runsFlux)) add(siteKeyFile(s), managedArmor(k.publicArmored), 'edgeforge');
  }
  for (const d of fluxDevices) add(`.sops/devices/${d.id}.asc`, managedArmor(keys.deviceSops.get(d.id)!.publicArmored), 'edgeforge');
}

/** the shared infrastructure and the apps' base, stable and canary rings (the operator's from then on) */
function addBasesAndRings(add: Add): void {
  add(
    'infrastructure/base/kustomization.yaml',
    seedYaml(
      kustomization({ resources: ['namespace.yaml'] }),
      'Shared infrastructure every device runs (namespaces, policies, node agents).\nRegion overlays include it: overlays/regions/<region>/kustomization.yaml.',
    ),
    'operator',
  );
  add('infrastructure/base/namespace.yaml', seedYaml(toYaml({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'edge-system' } })), 'operator');
  add('apps/base/kustomization.yaml', seedYaml(kustomization({ resources: ['namespace.yaml'] }), 'Workloads at the version every device runs. Change versions in apps/canary first.'), 'operator');
  add('apps/base/namespace.yaml', seedYaml(toYaml({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } })), 'operator');
  add(
    'apps/stable/kustomization.yaml',
    seedYaml(kustomization({ resources: ['../base'] }), 'The stable ring: what non-canary sites run. Keep it equal to apps/base;\npromote a change by moving it from apps/canary into apps/base.'),
    'operator',
  );
  add(
    'apps/canary/kustomization.yaml',
    seedYaml(
      kustomization({ resources: ['../base'] }),
      [
        'The canary ring: sites with `canary: true` in the inventory run this first.',
        'Stage a change here (a patch or an image tag), watch the canary sites, then promote it into',
        'apps/base and empty this again. Example:',
        '  images:',
        '    - name: registry.example.com/line-telemetry',
        '      newTag: "2.4.1"',
      ].join('\n'),
    ),
    'operator',
  );
}

/** Flux's own components, once per sizing class the fleet uses (devices reference them from flux-system/) */
function addFluxComponents(add: Add, fleet: Fleet, fluxDevices: ResolvedDevice[], input: FluxBundleInput): void {
  const classes = [...new Set(fluxDevices.map((d) => sizingClassFor(d.profile.ramMiB)))].sort() as SizingClass[];
  for (const cls of classes) {
    add(
      `infrastructure/flux-system/${cls}/kustomization.yaml`,
      managedYaml(
        kustomization({ resources: ['components.yaml'] }),
        `Flux ${fleet.gitops.flux.version} for ${cls === 'small' ? '2 GB' : '4 GB and larger'} devices. Upgrade Flux here (edgeforge gitops after changing the inventory pin).`,
      ),
      'edgeforge',
    );
    add(`infrastructure/flux-system/${cls}/components.yaml`, managedYaml(fluxComponentsYaml(fleet, cls, input)), 'edgeforge');
  }
}

/** overlays: region -> site -> device */
function addOverlays(add: Add, fleet: Fleet): void {
  for (const r of fleet.regions) {
    add(
      `${regionOverlay(r.name)}/kustomization.yaml`,
      seedYaml(
        kustomization({ resources: ['../../../infrastructure/base'] }),
        `Region overlay ${r.name}${r.description ? ` (${r.description})` : ''}: patches here apply to every site of the region.`,
      ),
      'operator',
    );
    for (const s of r.sites) {
      const ring = siteRing(s);
      add(
        `${siteOverlay(s)}/kustomization.yaml`,
        seedYaml(
          kustomization({ resources: [`../../../regions/${r.name}`, `../../../../apps/${ring}`] }),
          `Site overlay ${s.id}${s.description ? ` (${s.description})` : ''}; ring: ${ring}${ring === 'canary' ? ' (gets changes first)' : ''}.\nPatches and SOPS-encrypted secrets here apply to every device of the site.`,
        ),
        'operator',
      );
      for (const d of s.devices.filter(runsFlux)) addDevice(add, d, fleet);
    }
  }
}

function addDevice(add: Add, d: ResolvedDevice, fleet: Fleet): void {
  const dir = devicePath(d);
  const cls = sizingClassFor(d.profile.ramMiB);
  const agents = d.cluster.kind === 'multi-node-server' ? `\nThis cluster also has the agents ${d.cluster.agents.join(', ')}: pin workloads with nodeSelector kubernetes.io/hostname.` : '';
  add(
    `${dir}/kustomization.yaml`,
    seedYaml(
      kustomization({ resources: [`../../../../${siteOverlay(d)}`] }),
      `Entry point of ${d.id} (Flux Kustomization "device": prune, wait, SOPS). Device-specific patches and\nSOPS-encrypted secrets go here. flux-system/ beside it is reconciled separately: do not list it here.${agents}`,
    ),
    'operator',
  );
  add(
    `${dir}/flux-system/kustomization.yaml`,
    managedYaml(
      kustomization({ resources: [`../../../../../infrastructure/flux-system/${cls}`, 'gotk-sync.yaml'], patches: [{ path: 'sync-patch.yaml' }] }),
      `Flux for ${d.id}: its components and its sync objects, reconciled by the Kustomization "flux-system".\nYour changes go in sync-patch.yaml (yours), not here.`,
    ),
    'edgeforge',
  );
  // the operator's handle on this device's sync: suspend for a maintenance window, other timeouts
  add(
    `${dir}/flux-system/sync-patch.yaml`,
    seedYaml(
      toYaml({ apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization', metadata: { name: 'device', namespace: 'flux-system' }, spec: { suspend: false } }),
      `Patch to ${d.id}'s Kustomization "device". Maintenance window: set suspend: true, commit, push;\nthe device stops applying at its next poll and keeps fetching. Set it back to false to resume.`,
    ),
    'operator',
  );
  // empty until a site-key rotation; then `revoke` / `keys rotate --site --gitops` write the encrypted
  // sops-gpg Secret beside it and list it here (created once, so `gitops --to` never undoes a rotation)
  add(sopsKeysFiles(d).kustomization, sopsKeysKustomization(d, false), 'operator');
  // a multi-node server: its agents' join tokens (written with an admin key by `gitops --to` and `revoke`)
  if (d.cluster.kind === 'multi-node-server') add(`${joinTokensPath(d)}/kustomization.yaml`, joinTokensKustomization(d, []), 'operator');
  const poll = devicePollInterval(d.id, fleet.gitops.interval);
  add(
    `${dir}/flux-system/gotk-sync.yaml`,
    managedYaml(
      toYamlStream(fluxSyncObjects(d, fleet)),
      `Polls every ${poll.text} (${fleet.gitops.interval} + ${poll.offsetSeconds}s for ${d.id}).\nSuspend for a maintenance window in sync-patch.yaml beside this file (yours).`,
    ),
    'edgeforge',
  );
}

function readme(fleet: Fleet): string {
  const canary = fleet.sites.filter((s) => s.canary).map((s) => s.id);
  return `<!-- ${'Created once by edgeforge as a starting point: this file is yours, edgeforge never overwrites it.'} -->
# ${fleet.name}: GitOps repository

Every device pulls its desired state from this repository with Flux (source-controller + kustomize-controller);
nothing connects into a device. edgeforge keeps the files marked \`edgeforge:managed\` in step with the
inventory (\`edgeforge gitops --to .\`); everything else here is yours.

| path | what | owner |
|---|---|---|
| \`infrastructure/base/\` | shared infrastructure every device runs | you |
| \`apps/base/\`, \`apps/stable/\`, \`apps/canary/\` | workloads and the two rollout rings | you |
| \`overlays/regions/<region>/\` | region overlay | you |
| \`overlays/sites/<region>/<site>/\` | site overlay, picks the site's ring | you |
| \`clusters/<region>/<site>/<device>/\` | the device's entry point | you |
| \`clusters/<region>/<site>/<device>/flux-system/\` | Flux's sync objects for the device | edgeforge |
| \`infrastructure/flux-system/\` | Flux's own components (upgrades land here) | edgeforge |
| \`.sops.yaml\`, \`.sops/\` | SOPS recipients and public keys | edgeforge |

Staged rollouts: change \`apps/canary/\` first (canary sites: ${canary.length ? canary.join(', ') : 'none yet — set `canary: true` on a site'}),
then promote into \`apps/base/\`. Secrets: \`gpg --import .sops/admins/*.asc .sops/sites/*/*.asc .sops/devices/*.asc\`, then
\`sops --encrypt --in-place <file>\` — \`.sops.yaml\` picks the recipients from the path.
`;
}
