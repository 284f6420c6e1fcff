// The images edgeforge's own objects make a node pull: each must name its registry (a bare "rancher/x" means
// docker.io, which an airgap or mirror-only site cannot reach) and be one the inventory pins — with a digest
// where the inventory can give one, so what runs is what was reviewed.
import { refOf, type Finding, type TreeObject } from './check-objects.ts';
import YAML from 'yaml';
import { fluxChartImages, isFluxHelmChart } from '../inventory/flux-chart.ts';

export interface PinnedImage {
  /** repository[:tag][@sha256:…] as the inventory (or a pinned bundle) gives it */
  ref: string;
  /** what it is for, for messages */
  role: string;
  /** a Plan names the repository only: the upgrade controller adds the version's tag, so no digest fits there */
  repositoryOnly?: boolean;
}

export interface ImageFinding extends Finding {
  /** an unpinned digest is a warning (an error with --strict); everything else is an error */
  severity: 'error' | 'warning';
}

/**
 * Every image reference in an object: container images, Plan images, *_IMAGE settings of a ConfigMap, and the
 * controller images a flux2 HelmChart's valuesContent makes the chart run (K3s's helm-controller installs it).
 */
export function imagesOf(o: Record<string, unknown>): string[] {
  const out: string[] = isFluxHelmChart(o) ? fluxChartImages(chartValues(o)) : [];
  const walk = (v: unknown, key: string) => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === 'string' && (key === 'image' || (o.kind === 'ConfigMap' && /_IMAGE$/.test(key)))) out.push(v);
  };
  walk(o, '');
  return [...new Set(out)];
}

const hasRegistry = (ref: string) => {
  const first = ref.split('/')[0];
  return ref.includes('/') && (/[.:]/.test(first) || first === 'localhost');
};
const withoutDigest = (ref: string) => ref.replace(/@sha256:[0-9a-f]{64}$/, '');

export function checkImages(objects: TreeObject[], pinned: PinnedImage[]): ImageFinding[] {
  const byRef = new Map(pinned.map((p) => [withoutDigest(p.ref), p]));
  const findings: ImageFinding[] = [];
  for (const t of objects) {
    for (const img of imagesOf(t.object)) {
      const push = (severity: ImageFinding['severity'], reason: string) => findings.push({ path: t.path, ref: refOf(t.object), reason, severity });
      if (!hasRegistry(img)) push('error', `image ${img} names no registry (a node reads it as docker.io/…, which a site behind a mirror or without internet cannot pull)`);
      const pin = byRef.get(withoutDigest(img));
      if (!pin) {
        push('error', `image ${img} is not one the inventory pins (${[...byRef.keys()].join(', ') || 'none'})`);
        continue;
      }
      if (pin.repositoryOnly) continue;
      if (!/[@:][^/]+$/.test(img)) {
        push('error', `image ${img} (${pin.role}) names neither a tag nor a digest: a node runs whatever its default is`);
        continue;
      }
      if (!/@sha256:[0-9a-f]{64}$/.test(img)) push('warning', `image ${img} (${pin.role}) is pinned by tag only: give its digest in the inventory so every node runs the same bytes`);
      else if (img !== pin.ref) push('error', `image ${img} has another digest than the inventory's pin ${pin.ref}`);
    }
  }
  return findings;
}

/** A HelmChart's valuesContent, parsed (a value that does not parse as a mapping sets nothing). */
function chartValues(o: Record<string, unknown>): Record<string, unknown> {
  const v: unknown = YAML.parse(String((o.spec as { valuesContent?: unknown }).valuesContent ?? '')) ?? {};
  return typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
