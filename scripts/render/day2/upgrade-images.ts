// The images the K3s upgrade path pulls: the system-upgrade-controller, the kubectl its Jobs
// cordon and drain with, and one k3s-upgrade image per ring version. An airgap fleet's site mirror must
// serve each of them before the Plans that need them reach a device; `plan` lists them.
import type { Fleet } from '../../inventory/fleet.ts';
import { k3sImageTag, parseK3sVersion } from '../../inventory/k3s-versions.ts';
import { ringVersions } from './rings.ts';
import { UPGRADE_DEFAULTS } from '../../inventory/schema.ts';

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
  return fleet.k3s.upgrade ?? { ...UPGRADE_DEFAULTS, images: undefined };
}

const pullOf = (ref: string, sha256?: string) => (sha256 ? `${ref}@${sha256}` : ref);

export function controllerImage(fleet: Pick<Fleet, 'k3s'>): UpgradeImage {
  const c = upgradeSettings(fleet).controller;
  return { pull: pullOf(c.ref, c.sha256), ref: c.ref, sha256: c.sha256, role: 'system-upgrade-controller (Deployment)' };
}

export function kubectlImage(fleet: Pick<Fleet, 'k3s'>): UpgradeImage {
  const c = upgradeSettings(fleet).kubectl;
  return { pull: pullOf(c.ref, c.sha256), ref: c.ref, sha256: c.sha256, role: 'kubectl for cordon/drain (upgrade Jobs) and the revocation Job' };
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

/** containerd's name for a reference: a bare "rancher/x:tag" is docker.io's */
export function qualifiedImage(ref: string): string {
  const first = ref.slice(0, ref.indexOf('/'));
  return ref.includes('/') && (/[.:]/.test(first) || first === 'localhost') ? ref : `docker.io/${ref.includes('/') ? ref : `library/${ref}`}`;
}

/**
 * With an airgap install, every image of the upgrade path needs a pinned archive (k3s.upgrade.images, the
 * fleet's image-archive mechanism): a new device has no other way to get it. One message per missing image;
 * validate warns (unlike a Flux image, a missing one stops upgrades, not the device's convergence).
 */
export function upgradeImageArchiveProblems(fleet: Pick<Fleet, 'k3s' | 'sites' | 'imageArchives'>): string[] {
  if (fleet.k3s.install.mode !== 'airgap') return [];
  const pinned = new Set(fleet.imageArchives.map((p) => qualifiedImage(p.image)));
  return upgradeImages(fleet)
    .filter((i) => !pinned.has(qualifiedImage(i.ref)))
    .map(
      (i) =>
        `the K3s upgrade path needs ${qualifiedImage(i.ref)} (${i.role}) and k3s.upgrade.images has no archive of it: with k3s.install.mode airgap a new device cannot pull it, and its upgrades wait. Add { image: ${qualifiedImage(i.ref)}, file: …, sha256: … } (\`skopeo copy docker://${qualifiedImage(i.ref)} docker-archive:FILE:${qualifiedImage(i.ref)}\`)`,
    );
}

/**
 * kubectl works with API servers one minor older or newer (Kubernetes' version skew policy): a ring further from
 * the kubectl pin would drain and revoke with an unsupported client. One message per such ring.
 */
export function kubectlSkewProblems(fleet: Pick<Fleet, 'k3s' | 'sites'>): string[] {
  const k = kubectlImage(fleet);
  const m = /:v1\.(\d+)\.\d+(?:$|@)/.exec(k.ref.slice(k.ref.lastIndexOf('/')));
  if (!m) return [];
  const minor = Number(m[1]);
  return ringVersions(fleet)
    .filter((r) => Math.abs((parseK3sVersion(r.version)?.minor ?? minor) - minor) > 1)
    .map(
      (r) =>
        `k3s.upgrade.kubectl is ${k.ref} (Kubernetes 1.${minor}) but the ${r.ring} ring runs ${r.version}: kubectl supports one minor of skew, so drains and revocations there would use an unsupported client. Pin a kubectl of that line (k3s.upgrade.kubectl: { ref: docker.io/rancher/kubectl:v1.${parseK3sVersion(r.version)?.minor}.N, sha256: … })`,
    );
}
