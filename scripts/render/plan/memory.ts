// The memory budget of one device, every MiB accounted for: OS + K3s + hard-eviction reserve + system pods
// (Flux and the K3s upgrade controller at their limits) + workloads = RAM.
// Each reservation is the rendered kubelet setting (k3s/tuning.ts), whose floors are cited measured footprints.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { K3S_AGENT_FOOTPRINT, K3S_SERVER_FOOTPRINT, OS_FOOTPRINT, tuningFor, type Footprint } from '../k3s/tuning.ts';
import { fluxControllers } from '../flux/components.ts';
import { fluxMemoryLimitMi } from '../flux/sizing.ts';
import { runsFlux } from '../flux/sync.ts';
import { CONTROLLER_MEMORY_LIMIT_MIB } from '../day2/controller.ts';

export interface BudgetPart {
  part: string;
  mib: number;
  /** where the number comes from */
  basis: string;
}

export interface MemoryBudget {
  ramMiB: number;
  parts: BudgetPart[];
  /** what is left for the operator's workloads (RAM minus every part) */
  workloadsMiB: number;
  /** the measured footprints the reservations may not go below */
  footprints: Footprint[];
}

/** Pods every device of a kind runs besides the operator's workloads, with the memory they may take. */
export interface SystemPod {
  name: string;
  runsOn(d: ResolvedDevice): boolean;
  limitMiB(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>): number;
  basis: string;
}

function controllersOf(fleet: Pick<Fleet, 'gitops'>): string[] {
  try {
    return fluxControllers(fleet);
  } catch {
    return ['source-controller', 'kustomize-controller'];
  }
}

// the status reporter (#24) is a systemd oneshot with its own MemoryMax, not a pod: it is not counted here
export const SYSTEM_PODS: SystemPod[] = [
  {
    name: 'Flux controllers',
    runsOn: runsFlux,
    limitMiB: (d, fleet) => fluxMemoryLimitMi(d.profile.ramMiB, controllersOf(fleet)),
    basis: 'sum of the controllers\' memory limits (flux/sizing.ts)',
  },
  {
    // one per cluster, on its server (the device that runs Flux); its upgrade Jobs run only inside the window
    name: 'K3s upgrade controller',
    runsOn: runsFlux,
    limitMiB: () => CONTROLLER_MEMORY_LIMIT_MIB,
    basis: 'the memory limit of the system-upgrade-controller container in its rendered Deployment (day2/controller.ts)',
  },
];

export function memoryBudget(d: ResolvedDevice, fleet: Pick<Fleet, 'gitops'>): MemoryBudget {
  const t = tuningFor(d.profile, d.role);
  const k3s = t.role === 'server' ? K3S_SERVER_FOOTPRINT : K3S_AGENT_FOOTPRINT;
  const parts: BudgetPart[] = [
    { part: 'OS (system-reserved)', mib: t.systemReservedMiB, basis: `≥ ${OS_FOOTPRINT.what}, ${OS_FOOTPRINT.mib} MiB measured` },
    { part: `K3s ${t.role} (kube-reserved)`, mib: t.kubeReservedMiB, basis: `≥ ${k3s.what}, ${k3s.mib} MiB measured` },
    { part: 'hard-eviction reserve', mib: t.evictionHardMiB, basis: 'eviction-hard memory.available' },
  ];
  for (const p of SYSTEM_PODS) if (p.runsOn(d)) parts.push({ part: p.name, mib: p.limitMiB(d, fleet), basis: p.basis });
  const used = parts.reduce((a, p) => a + p.mib, 0);
  return { ramMiB: t.ramMiB, parts, workloadsMiB: t.ramMiB - used, footprints: [OS_FOOTPRINT, k3s] };
}
