// The day-2 part of the GitOps repository, as scaffold files (edgeforge-owned, rewritten by `edgeforge gitops`):
//   infrastructure/system-upgrade/   the system-upgrade-controller: RBAC, settings, Deployment (one copy; the
//                                    controller registers its Plan CRD itself)
//   upgrades/<region>/<site>/        the site's Plans: its ring's K3s version, its maintenance window
// Every server applies them with its own Flux Kustomizations "system-upgrade" and "upgrades" (render/flux/sync.ts).
import type { Fleet } from '../../inventory/fleet.ts';
import { toYaml, toYamlStream } from '../yaml.ts';
import { windowText } from '../../inventory/windows.ts';
import { controllerObjects } from './controller.ts';
import { controllerVersion } from './upgrade-images.ts';
import { sitePlans, sitesWithPlans, upgradesPath } from './plans.ts';
import { UPGRADE_CONTROLLER_PATH } from '../flux/sync.ts';
import { ringOf, ringVersion } from './rings.ts';

export const CONTROLLER_PATH = UPGRADE_CONTROLLER_PATH;

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
    {
      path: `${CONTROLLER_PATH}/kustomization.yaml`,
      body: kustomization(['controller.yaml']),
      about: `The K3s upgrade controller (system-upgrade-controller ${controllerVersion(fleet)}) every cluster runs on its server.\nIts image comes through the site mirror where there is one (k3s.upgrade in the inventory).`,
    },
    {
      path: `${CONTROLLER_PATH}/controller.yaml`,
      body: toYamlStream(controllerObjects(fleet)),
      about:
        "RBAC, settings and Deployment of the system-upgrade-controller (edgeforge's own manifests). No Plan CRD:\nthe controller registers its own at every start, so edgeforge ships none (two writers would overwrite each other).",
    },
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
