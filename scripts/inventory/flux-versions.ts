// Flux releases edgeforge renders for: one home for the pinned release and what is known about it. Facts are
// read from the release's own manifests (controlplaneio-fluxcd/flux-operator keeps each Flux release's
// install manifests under config/data/flux/v<version>/; read 2026-12-07), never from memory.

/** The Flux release a fleet runs unless gitops.flux.version says otherwise. */
export const FLUX_DEFAULT_VERSION = 'v2.9.6';

export interface FluxRelease {
  /** controller image tags the release's Deployments run */
  sourceController: string;
  kustomizeController: string;
  helmController: string;
  notificationController: string;
  /** where that was read */
  source: string;
}

/**
 * Flux v2.9.6 is the newest release whose manifests are in the stored public material (v2.10.0 exists, its
 * manifests were not readable here); Flux maintains the three most recent minors, so 2.9 is supported.
 * Its CRDs are kept in upstream/crds/flux@v2.9.6/ (OCIRepository is v1 there, GA).
 */
export const FLUX_RELEASES: Record<string, FluxRelease> = {
  'v2.9.6': {
    sourceController: 'v1.9.6',
    kustomizeController: 'v1.9.6',
    helmController: 'v1.6.5',
    notificationController: 'v1.9.4',
    source:
      "controlplaneio-fluxcd/flux-operator config/data/flux/v2.9.6/: {source,kustomize}-controller.yaml @2fad6ae67b6b, helm-controller.yaml @8e761853ba15, notification-controller.yaml @959c6c2e1483 (each Deployment's image tag)",
  },
};

// The fluxcd-community `flux2` chart line of Flux 2.9: chart 2.19.0 ships Flux v2.9.1 (controllers v1.9.2), a
// third-party record of a `helm template` of that chart; the chart version that ships v2.9.6 was not
// established. Helm mode therefore also sets the controllers' image tags to the pinned release's (above).
// The chart itself, as far as it could be read (upstream/charts/flux2/): values.yaml and source-controller.yaml
// at commit 03c4c3f9, which its own test snapshot labels chart 2.19.0 while its defaults are still Flux 2.8.8's
// (no commit with appVersion 2.9.x was readable), kustomize-controller.yaml of chart 2.17.1; every value Helm mode
// sets is checked against them (test/render/flux-chart-values.test.ts).
