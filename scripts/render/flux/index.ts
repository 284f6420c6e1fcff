// The Flux side of a device: what render/build call. See docs/gitops.md ("How to call").
export { renderFluxBootstrap, fluxFirstbootFragment, fluxHandoverScript, FLUX_BOOTSTRAP_FILES } from './bootstrap.ts';
export { fluxComponents, fluxInstallProblem } from './components.ts';
export { devicePath, fluxGitUrl, pinnedKnownHosts, gitopsSourceProblems, runsFlux } from './sync.ts';
export { devicePollInterval, parseDuration, formatDuration } from './jitter.ts';
export { fluxSizing } from './sizing.ts';
export { fluxControllerImages, fluxImageArchiveProblems, fluxAirgapHelmProblem } from './controller-images.ts';
