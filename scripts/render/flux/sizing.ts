// Requests, limits and GOMEMLIMIT for the Flux controllers, by board RAM.
//
// What Flux publishes: the release install.yaml asks 64Mi memory per controller (source-controller
// 50m CPU, kustomize-controller 100m) with a 1Gi / 1 CPU limit and sets GOMEMLIMIT from the limit
// (resourceFieldRef limits.memory), sized for clusters managing hundreds of apps. A single edge device
// reconciles one small Git source and a few Kustomizations, so the limits are far lower here (below) and the
// plan's memory budget counts the controllers AT THEIR LIMITS (what they may take before the OOM killer).
// GOMEMLIMIT is a soft target for the Go GC: set at GOMEMLIMIT_FRACTION of the container limit, so the GC
// works harder only as the heap nears the limit, with headroom for memory the Go runtime does not see (the
// Go GC guide, go.dev/doc/gc-guide, "Suggested uses": leave 5-10% headroom). Setting it at the request
// instead — below the controllers' working set — kept the GC running almost continuously.
// docs/gitops.md has the table.

/** GOMEMLIMIT = this fraction of the container's memory limit (10% headroom for non-heap memory). */
export const GOMEMLIMIT_FRACTION = 0.9;

/** Controllers edgeforge does not size (helm-, notification-controller) keep the release's 1Gi limit. */
export const FLUX_RELEASE_LIMIT_MI = 1024;

const goMemLimit = (limitMi: number) => Math.floor(limitMi * GOMEMLIMIT_FRACTION);

export type SizingClass = 'small' | 'standard';

export interface ControllerSizing {
  cpuRequest: string;
  cpuLimit: string;
  memoryRequestMi: number;
  memoryLimitMi: number;
  /** Go soft memory limit (GOMEMLIMIT), MiB */
  goMemLimitMi: number;
  /** GOMAXPROCS, when we pin it */
  goMaxProcs?: number;
  /** the controller's --concurrent */
  concurrent: number;
}

export interface FluxSizing {
  class: SizingClass;
  source: ControllerSizing;
  kustomize: ControllerSizing;
}

const SMALL: FluxSizing = {
  class: 'small',
  source: { cpuRequest: '25m', cpuLimit: '500m', memoryRequestMi: 44, memoryLimitMi: 128, goMemLimitMi: goMemLimit(128), goMaxProcs: 2, concurrent: 1 },
  kustomize: { cpuRequest: '25m', cpuLimit: '1000m', memoryRequestMi: 52, memoryLimitMi: 192, goMemLimitMi: goMemLimit(192), goMaxProcs: 2, concurrent: 2 },
};

const STANDARD: FluxSizing = {
  class: 'standard',
  source: { cpuRequest: '50m', cpuLimit: '1000m', memoryRequestMi: 64, memoryLimitMi: 256, goMemLimitMi: goMemLimit(256), concurrent: 2 },
  kustomize: { cpuRequest: '50m', cpuLimit: '1000m', memoryRequestMi: 96, memoryLimitMi: 384, goMemLimitMi: goMemLimit(384), concurrent: 4 },
};

/** 2 GB boards (and smaller) get the tight budget; 4 GB and up the standard one. */
export function sizingClassFor(ramMiB: number): SizingClass {
  return ramMiB <= 2048 ? 'small' : 'standard';
}

export function fluxSizing(cls: SizingClass): FluxSizing {
  return cls === 'small' ? SMALL : STANDARD;
}

export function fluxSizingForRam(ramMiB: number): FluxSizing {
  return fluxSizing(sizingClassFor(ramMiB));
}

/** Memory the Flux controllers may take on one device (the sum of their limits), MiB. */
export function fluxMemoryLimitMi(ramMiB: number, controllers: readonly string[]): number {
  const s = fluxSizingForRam(ramMiB);
  const unsized = controllers.filter((c) => c !== 'source-controller' && c !== 'kustomize-controller').length;
  return s.source.memoryLimitMi + s.kustomize.memoryLimitMi + unsized * FLUX_RELEASE_LIMIT_MI;
}
