// The fluxcd-community `flux2` chart's values for the controllers it can run (charts/flux2/values.yaml, kept in
// upstream/charts/flux2/): `<key>.create` (default true), `<key>.image` (the repository, default
// ghcr.io/fluxcd/<controller>) and `<key>.tag` (default: the chart's own). Helm mode writes them
// (render/flux/components.ts); the image check reads them back out of a HelmChart (conformance/image-pins.ts).

/** controller -> its key in the chart's values */
export const FLUX_CHART_CONTROLLERS: Record<string, string> = {
  'source-controller': 'sourceController',
  'kustomize-controller': 'kustomizeController',
  'helm-controller': 'helmController',
  'notification-controller': 'notificationController',
  'image-automation-controller': 'imageAutomationController',
  'image-reflector-controller': 'imageReflectionController',
};

/** The images chart values make the chart run: repository:tag, or the bare repository where no tag is set (the chart's default). */
export function fluxChartImages(values: Record<string, unknown>): string[] {
  return Object.entries(FLUX_CHART_CONTROLLERS).flatMap(([controller, key]) => {
    const c = (values[key] ?? {}) as { create?: boolean; image?: string; tag?: string };
    if (c.create === false) return [];
    const repository = c.image ?? `ghcr.io/fluxcd/${controller}`;
    return [c.tag ? `${repository}:${c.tag}` : repository];
  });
}

/** Whether a HelmChart installs the flux2 chart (the one whose values fluxChartImages knows). */
export const isFluxHelmChart = (o: Record<string, unknown>): boolean =>
  o.apiVersion === 'helm.cattle.io/v1' && o.kind === 'HelmChart' && /(^|\/)flux2$/.test(String((o.spec as { chart?: unknown } | undefined)?.chart ?? ''));
