// The day-2 part of the GitOps repository (issue #18), as scaffold files (edgeforge-owned, rewritten by
// `edgeforge gitops`):
//   infrastructure/system-upgrade/   the system-upgrade-controller: CRD, RBAC, Deployment (one copy)
//   upgrades/<region>/<site>/        the site's Plans: its ring's K3s version, its maintenance window
// Every server's flux-system/kustomization.yaml lists both (deviceUpgradeResources), so the Kustomization
// "flux-system" applies them beside Flux itself.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { toYaml, toYamlStream } from '../yaml.ts';
import { windowText } from '../../inventory/windows.ts';
import { controllerObjects } from './controller.ts';
import { controllerVersion } from './images.ts';
import { sitePlans, sitesWithPlans, upgradesPath } from './plans.ts';
import { ringOf, ringVersion } from './rings.ts';

export const CONTROLLER_PATH = 'infrastructure/system-upgrade';

export interface Day2File {
  path: string;
  /** YAML body (the caller adds the managed marker and the comment) */
  body: string;
  about: string;
}

const kustomization = (resources: string[]) => toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources });

export function day2ScaffoldFiles(fleet: Fleet): Day2File[] {
  const sites = sitesWithPlans(fleet);
  if (!sites.length) return [];
  const files: Day2File[] = [
    { path: `${CONTROLLER_PATH}/kustomization.yaml`, body: kustomization(['controller.yaml']), about: `The K3s upgrade controller (system-upgrade-controller ${controllerVersion(fleet)}) every cluster runs on its server.\nIts image comes through the site mirror where there is one (k3s.upgrade in the inventory).` },
    { path: `${CONTROLLER_PATH}/controller.yaml`, body: toYamlStream(controllerObjects(fleet)), about: 'CRD, RBAC, settings and Deployment of the system-upgrade-controller (edgeforge\'s own manifests).' },
  ];
  for (const s of sites) {
    const ring = ringOf(s);
    const dir = upgradesPath(s);
    files.push({ path: `${dir}/kustomization.yaml`, body: kustomization(['plans.yaml']), about: `K3s upgrade Plans of ${s.id} (${ring} ring).` });
    files.push({
      path: `${dir}/plans.yaml`,
      body: toYamlStream(sitePlans(s, fleet)),
      about: `${s.id}: ${ring} ring, K3s ${ringVersion(fleet, ring)}${ring === 'canary' ? ' (k3s.canaryVersion, or k3s.version when no rollout is in progress)' : ' (k3s.version; moved by `edgeforge rollout promote`)'}.\nMaintenance window ${windowText(s.window)} (${s.window.source}). Change the inventory, not this file.`,
    });
  }
  return files;
}

/** The resources a server's flux-system/kustomization.yaml adds (relative to clusters/<r>/<s>/<d>/flux-system). */
export function deviceUpgradeResources(d: Pick<ResolvedDevice, 'region' | 'site'>): string[] {
  return [`../../../../../${CONTROLLER_PATH}`, `../../../../../${upgradesPath({ region: d.region, name: d.site })}`];
}
