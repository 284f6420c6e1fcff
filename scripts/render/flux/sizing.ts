// Requests, limits and GOMEMLIMIT for the Flux controllers, by board RAM.
//
// What Flux publishes: the release install.yaml asks 64Mi memory per controller (source-controller
// 50m CPU, kustomize-controller 100m) with a 1Gi / 1 CPU limit, sized for clusters managing hundreds of
// apps (the "vertical scaling" guide raises them further). A single edge device reconciles one small
// Git source and one Kustomization, so we aim at a steady-state budget under the ~100 MB the seed asks
// for (the sum of the soft targets below), keep hard limits above it so a large kustomize build spikes
// instead of being OOM-killed mid-apply, and set GOMEMLIMIT to the soft target: the Go GC then works
// harder as the heap nears it instead of letting RSS grow to the limit. docs/gitops.md has the table.

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
  source: { cpuRequest: '25m', cpuLimit: '500m', memoryRequestMi: 44, memoryLimitMi: 128, goMemLimitMi: 44, goMaxProcs: 2, concurrent: 1 },
  kustomize: { cpuRequest: '25m', cpuLimit: '1000m', memoryRequestMi: 52, memoryLimitMi: 192, goMemLimitMi: 52, goMaxProcs: 2, concurrent: 2 },
};

const STANDARD: FluxSizing = {
  class: 'standard',
  source: { cpuRequest: '50m', cpuLimit: '1000m', memoryRequestMi: 64, memoryLimitMi: 256, goMemLimitMi: 64, concurrent: 2 },
  kustomize: { cpuRequest: '50m', cpuLimit: '1000m', memoryRequestMi: 96, memoryLimitMi: 384, goMemLimitMi: 96, concurrent: 4 },
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
