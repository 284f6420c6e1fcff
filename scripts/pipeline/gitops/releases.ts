// The upstream releases whose CRDs a fleet's tree is checked against (upstream/crds/<project>@<tag>/): the pinned
// upgrade controller (its Plan), the pinned Flux (GitRepository, Kustomization), and — when Flux comes as a K3s
// HelmChart — the helm-controller K3s embeds.
import type { Fleet } from '../../inventory/fleet.ts';
import { controllerVersion } from '../../render/day2/upgrade-images.ts';
import { K3S_HELM_CONTROLLER } from '../../inventory/k3s-versions.ts';
import { parseK3sVersion } from '../../inventory/k3s-versions.ts';
import { ringVersions } from '../../render/day2/rings.ts';

export function pinnedReleases(fleet: Fleet): string[] {
  const out = [`system-upgrade-controller@${controllerVersion(fleet)}`, `flux@v${fleet.gitops.flux.version.replace(/^v/, '')}`];
  if (fleet.gitops.flux.install?.mode === 'helm') {
    for (const r of ringVersions(fleet)) {
      const minor = parseK3sVersion(r.version)?.minor;
      const hc = minor === undefined ? undefined : K3S_HELM_CONTROLLER[minor];
      if (hc) out.push(`helm-controller@${hc}`);
    }
  }
  return [...new Set(out)];
}
