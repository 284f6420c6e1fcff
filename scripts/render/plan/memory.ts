// The memory budget of one device, every MiB accounted for: OS + K3s + hard-eviction reserve + system pods
// (Flux and the K3s upgrade controller at their limits) + workloads = the RAM Linux can use (inventory/boards.ts).
// Each reservation is the rendered kubelet setting (k3s/tuning.ts), whose floors are cited measured footprints.
// A (profile, role) whose budget leaves less than WORKLOAD_FLOOR_MIB for workloads is refused (memoryProblems).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { usableRam } from '../../inventory/boards.ts';
import { K3S_AGENT_FOOTPRINT, K3S_SERVER_FOOTPRINT, OS_FOOTPRINT, tuningFor, type Footprint } from '../k3s/tuning.ts';
import { fluxControllers } from '../flux/components.ts';
import { fluxMemoryLimitMi, fluxSizingForRam, FLUX_RELEASE_LIMIT_MI } from '../flux/sizing.ts';
import { runsFlux } from '../flux/sync.ts';
import { CONTROLLER_MEMORY_LIMIT_MIB, CONTROLLER_MEMORY_REQUEST_MIB } from '../day2/controller.ts';

/**
 * The least a device must keep for the operator's own pods. Below it the device runs K3s and its agents and
 * little else: one small workload container (a telemetry forwarder, an OPC UA bridge) plus the headroom the
 * kubelet needs to evict without the kernel OOM killer — edgeforge's own line, stated in the plan.
 */
export const WORKLOAD_FLOOR_MIB = 256;

/** The seed's target for the GitOps agent on a device (100 MB = 95.4 MiB). */
export const GITOPS_AGENT_TARGET_MB = 100;

export interface BudgetPart {
  part: string;
  mib: number;
  /** where the number comes from */
  basis: string;
}

export interface MemoryBudget {
  /** nominal RAM of the profile */
  nominalMiB: number;
  /** what Linux can use (MemTotal): the budget's total */
  ramMiB: number;
  ramBasis: string;
  parts: BudgetPart[];
  /** what is left for the operator's workloads (usable RAM minus every part) */
  workloadsMiB: number;
  /** the measured footprints the reservations may not go below */
  footprints: Footprint[];
}

/** Pods every device of a kind runs besides the operator's workloads, with the memory they may take. */
export interface SystemPod {
  name: string;
  runsOn(d: Pick<ResolvedDevice, 'status' | 'cluster'>): boolean;
  limitMiB(d: Pick<ResolvedDevice, 'profile'>, fleet: Pick<Fleet, 'gitops'>): number;
  requestMiB(d: Pick<ResolvedDevice, 'profile'>, fleet: Pick<Fleet, 'gitops'>): number;
  basis: string;
}

function controllersOf(fleet: Pick<Fleet, 'gitops'>): string[] {
  try {
    return fluxControllers(fleet);
  } catch {
    return ['source-controller', 'kustomize-controller'];
  }
}

function fluxRequestMi(ramMiB: number, controllers: readonly string[]): number {
  const s = fluxSizingForRam(ramMiB);
  // controllers edgeforge does not size keep the release's request (64Mi, like the two it sizes start from)
  const unsized = controllers.filter((c) => c !== 'source-controller' && c !== 'kustomize-controller').length;
  return s.source.memoryRequestMi + s.kustomize.memoryRequestMi + unsized * 64;
}

// the status reporter is a systemd oneshot with its own MemoryMax, not a pod: it is not counted here
export const SYSTEM_PODS: SystemPod[] = [
  {
    name: 'Flux controllers',
    runsOn: runsFlux,
    limitMiB: (d, fleet) => fluxMemoryLimitMi(d.profile.ramMiB, controllersOf(fleet)),
    requestMiB: (d, fleet) => fluxRequestMi(d.profile.ramMiB, controllersOf(fleet)),
    basis: `sum of the controllers' memory limits (flux/sizing.ts; a controller edgeforge does not size keeps the release's ${FLUX_RELEASE_LIMIT_MI} MiB)`,
  },
  {
    // one per cluster, on its server (the device that runs Flux); its upgrade Jobs run only inside the window
    name: 'K3s upgrade controller',
    runsOn: runsFlux,
    limitMiB: () => CONTROLLER_MEMORY_LIMIT_MIB,
    requestMiB: () => CONTROLLER_MEMORY_REQUEST_MIB,
    basis: 'the memory limit of the system-upgrade-controller container in its rendered Deployment (day2/controller.ts)',
  },
];

type BudgetDevice = Pick<ResolvedDevice, 'profile' | 'role' | 'status' | 'cluster'>;

export function memoryBudget(d: BudgetDevice, fleet: Pick<Fleet, 'gitops'>): MemoryBudget {
  const t = tuningFor(d.profile, d.role);
  const usable = usableRam(d.profile);
  const k3s = t.role === 'server' ? K3S_SERVER_FOOTPRINT : K3S_AGENT_FOOTPRINT;
  const parts: BudgetPart[] = [
    { part: 'OS (system-reserved)', mib: t.systemReservedMiB, basis: `≥ ${OS_FOOTPRINT.what}, ${OS_FOOTPRINT.mib} MiB measured` },
    { part: `K3s ${t.role} (kube-reserved)`, mib: t.kubeReservedMiB, basis: `≥ ${k3s.what}, ${k3s.mib} MiB measured` },
    { part: 'hard-eviction reserve', mib: t.evictionHardMiB, basis: 'eviction-hard memory.available' },
  ];
  for (const p of SYSTEM_PODS) if (p.runsOn(d)) parts.push({ part: p.name, mib: p.limitMiB(d, fleet), basis: p.basis });
  const used = parts.reduce((a, p) => a + p.mib, 0);
  return { nominalMiB: t.ramMiB, ramMiB: usable.mib, ramBasis: usable.basis, parts, workloadsMiB: usable.mib - used, footprints: [OS_FOOTPRINT, k3s] };
}

export interface GitopsAgent {
  requestMiB: number;
  limitMiB: number;
  targetMiB: number;
  parts: { name: string; requestMiB: number; limitMiB: number }[];
}

/** The GitOps agent of a device that runs Flux (Flux's controllers and the upgrade controller), against the seed's target. */
export function gitopsAgent(d: Pick<ResolvedDevice, 'profile'>, fleet: Pick<Fleet, 'gitops'>): GitopsAgent {
  const parts = SYSTEM_PODS.map((p) => ({ name: p.name, requestMiB: p.requestMiB(d, fleet), limitMiB: p.limitMiB(d, fleet) }));
  return {
    requestMiB: parts.reduce((a, p) => a + p.requestMiB, 0),
    limitMiB: parts.reduce((a, p) => a + p.limitMiB, 0),
    targetMiB: Math.floor((GITOPS_AGENT_TARGET_MB * 1e6) / 2 ** 20),
    parts,
  };
}

const roleOf = (d: Pick<ResolvedDevice, 'cluster'>) => (d.cluster.kind === 'multi-node-agent' ? 'agent' : d.cluster.kind === 'multi-node-server' ? 'cluster server' : 'single-node server');

/** Every (profile, role) in use whose budget leaves less than the floor, as a message for the profile. */
export function memoryProblems(fleet: Pick<Fleet, 'active' | 'gitops'>): { profile: string; message: string }[] {
  const seen = new Set<string>();
  const out: { profile: string; message: string }[] = [];
  for (const d of fleet.active) {
    const role = roleOf(d);
    const key = `${d.profileName}\0${role}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const b = memoryBudget(d, fleet);
    if (b.workloadsMiB >= WORKLOAD_FLOOR_MIB) continue;
    const parts = b.parts.map((p) => `${p.part} ${p.mib}`).join(' + ');
    out.push({
      profile: d.profileName,
      message: `profile "${d.profileName}" as a ${role} (e.g. ${d.id}) leaves ${b.workloadsMiB} MiB for workloads, less than the ${WORKLOAD_FLOOR_MIB} MiB floor: ${b.ramMiB} MiB usable (${b.ramBasis.startsWith('estimate') ? `of ${b.nominalMiB} MiB nominal` : 'usableRamMiB'}) − ${parts} MiB. Use a board with more RAM${role === 'agent' ? '' : ', or make the device an agent of a site server'}`,
    });
  }
  return out;
}
