// The Flux side of a device: what render/build call. See docs/gitops.md ("How to call").
export { renderFluxBootstrap, fluxFirstbootFragment, fluxHandoverScript, FLUX_BOOTSTRAP_DIR, FLUX_BOOTSTRAP_FILES, FLUX_SECRET_FILE } from './bootstrap.ts';
export type { FluxDeviceSecrets } from './secrets.ts';
export { fluxComponents, fluxComponentsYaml, fluxInstallProblem, fluxControllers, fluxStorageMode, readFluxBundle, type FluxBundleInput } from './components.ts';
export { fluxSyncObjects, devicePath, fluxGitUrl, pinnedKnownHosts, gitSource, gitopsSourceProblems, runsFlux } from './sync.ts';
export { devicePollInterval, parseDuration, formatDuration } from './jitter.ts';
export { fluxSizing, fluxSizingForRam, sizingClassFor, type SizingClass } from './sizing.ts';
export { fluxControllerImages, fluxImageArchiveProblems, fluxAirgapHelmProblem } from './images.ts';
