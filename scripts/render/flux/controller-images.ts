// Which container images the fleet's Flux controllers run, and whether an airgap install carries every one
// of them as a pinned archive (scripts/inventory/image-archives.ts): without it a device with no route to the
// internet would install Flux's manifests and then wait forever for ghcr.io.
import type { Fleet } from '../../inventory/fleet.ts';
import { fluxComponentsFromBundle, fluxControllers } from './components.ts';

/** image -> the controller Deployments (and containers) that run it, for the controllers this fleet selects. */
export function fluxControllerImages(fleet: Pick<Fleet, 'gitops' | 'k3s'>, bundle: Uint8Array | undefined): Map<string, string[]> {
  const selected = new Set<string>(fluxControllers(fleet));
  const out = new Map<string, string[]>();
  // the sizing class changes resources only, never an image
  for (const d of fluxComponentsFromBundle(fleet, 'small', bundle)) {
    const name = String((d.metadata as { name?: string } | undefined)?.name);
    if (d.kind !== 'Deployment' || !selected.has(name)) continue;
    const pod = (d.spec as { template?: { spec?: { containers?: { image?: string }[]; initContainers?: { image?: string }[] } } }).template?.spec;
    for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
      if (c.image) out.set(c.image, [...(out.get(c.image) ?? []), name]);
    }
  }
  return out;
}

/**
 * With an airgap install and a Flux bundle: every controller image needs its pinned archive. Each message
 * names the image and the Deployment. Empty otherwise (online installs pull, through the site mirror if any).
 */
export function fluxImageArchiveProblems(fleet: Pick<Fleet, 'gitops' | 'k3s' | 'imageArchives'>, bundle: Uint8Array | undefined): string[] {
  const inst = fleet.gitops.flux.install;
  if (fleet.k3s.install.mode !== 'airgap' || inst?.mode !== 'bundle') return [];
  const pinned = new Set(fleet.imageArchives.map((p) => p.image));
  const out: string[] = [];
  for (const [image, users] of fluxControllerImages(fleet, bundle)) {
    if (!pinned.has(image)) {
      out.push(
        `the Flux bundle's ${users.join(', ')} run${users.length === 1 ? 's' : ''} ${image}, which has no pinned archive in gitops.flux.install.images: with k3s.install.mode airgap nothing can pull it. Add { image: ${image}, file: …, sha256: … } (an archive made with \`skopeo copy docker://${image} docker-archive:FILE:${image}\` or \`docker save\`)`,
      );
    }
  }
  return out;
}

/** Airgap install with Flux from a Helm chart: the chart and its images come from the internet. */
export function fluxAirgapHelmProblem(fleet: Pick<Fleet, 'gitops' | 'k3s'>): string | undefined {
  const inst = fleet.gitops.flux.install;
  if (fleet.k3s.install.mode !== 'airgap' || inst?.mode !== 'helm') return undefined;
  return `k3s.install.mode is airgap but gitops.flux.install is a Helm chart from ${inst.repo}: at first boot K3s's helm-controller fetches the chart and the controllers pull their images from the internet. Pin the Flux release as a bundle with its image archives ({mode: bundle, file, sha256, images: [...]}) for devices without a route out`;
}
