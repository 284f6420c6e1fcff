// The images the K3s upgrade path pulls (issue #18): the system-upgrade-controller, the kubectl its Jobs
// cordon and drain with, and one k3s-upgrade image per ring version. An airgap fleet's site mirror must
// serve each of them before the Plans that need them reach a device; `plan` lists them.
import type { Fleet } from '../../inventory/fleet.ts';
import { k3sImageTag } from '../../inventory/k3s-versions.ts';
import { ringVersions } from './rings.ts';

export interface UpgradeImage {
  /** repository:tag as written in the manifests (with @sha256 when the inventory pins a digest) */
  pull: string;
  ref: string;
  sha256?: string;
  /** what it is for */
  role: string;
}

export function upgradeSettings(fleet: Pick<Fleet, 'k3s'>) {
  // the schema fills the defaults; a Fleet built by hand in a test may lack them
  const u = fleet.k3s.upgrade ?? { controller: { ref: 'rancher/system-upgrade-controller:v0.16.1' }, kubectl: { ref: 'rancher/kubectl:v1.31.4' }, k3sUpgrade: { repository: 'rancher/k3s-upgrade' } };
  return u;
}

const pullOf = (ref: string, sha256?: string) => (sha256 ? `${ref}@${sha256}` : ref);

export function controllerImage(fleet: Pick<Fleet, 'k3s'>): UpgradeImage {
  const c = upgradeSettings(fleet).controller;
  return { pull: pullOf(c.ref, c.sha256), ref: c.ref, sha256: c.sha256, role: 'system-upgrade-controller (Deployment)' };
}

export function kubectlImage(fleet: Pick<Fleet, 'k3s'>): UpgradeImage {
  const c = upgradeSettings(fleet).kubectl;
  return { pull: pullOf(c.ref, c.sha256), ref: c.ref, sha256: c.sha256, role: 'kubectl for cordon/drain (upgrade Jobs)' };
}

/** The controller's pinned version, from its image tag (what the plan and the docs name). */
export function controllerVersion(fleet: Pick<Fleet, 'k3s'>): string {
  const ref = upgradeSettings(fleet).controller.ref;
  const at = ref.lastIndexOf(':');
  return at > ref.lastIndexOf('/') ? ref.slice(at + 1) : 'latest';
}

/** The k3s-upgrade repository (no tag: the controller adds the Plan's version, "+" written as "-"). */
export function k3sUpgradeRepository(fleet: Pick<Fleet, 'k3s'>): string {
  return upgradeSettings(fleet).k3sUpgrade.repository;
}

export function k3sUpgradeImage(fleet: Pick<Fleet, 'k3s'>, version: string): UpgradeImage {
  const u = upgradeSettings(fleet).k3sUpgrade;
  const ref = `${u.repository}:${k3sImageTag(version)}`;
  const sha256 = u.sha256?.[version];
  return { pull: pullOf(ref, sha256), ref, sha256, role: `k3s-upgrade for K3s ${version} (replaces the binary on each node)` };
}

/** Every image the upgrade path needs now: the controller, kubectl, and k3s-upgrade at each ring's version. */
export function upgradeImages(fleet: Pick<Fleet, 'k3s' | 'sites'>): UpgradeImage[] {
  const versions = [...new Set(ringVersions(fleet).map((r) => r.version))];
  return [controllerImage(fleet), kubectlImage(fleet), ...versions.map((v) => k3sUpgradeImage(fleet, v))];
}
