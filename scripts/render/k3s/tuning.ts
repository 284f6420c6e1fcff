// K3s on a 2-4 GB board: the numbers are derived from the device's RAM and role, not copied.
// Why each matters is in the comment beside it; `plan` prints these comments for operators.
import type { Profile } from '../../inventory/schema.ts';
import { usableRam } from '../../inventory/boards.ts';

export interface Tuning {
  ramMiB: number;
  role: 'server' | 'agent';
  systemReservedMiB: number;
  kubeReservedMiB: number;
  evictionHardMiB: number;
  evictionSoftMiB: number;
  maxPods: number;
  logMaxSize: string;
  logMaxFiles: number;
  imageGcHigh: number;
  imageGcLow: number;
  /** what Linux can use (MemTotal; inventory/boards.ts): the kubelet's capacity */
  usableMiB: number;
  /** capacity less the reservations: what the kubelet offers pods (system pods such as Flux included) */
  allocatableMiB: number;
}

const round32 = (n: number) => Math.round(n / 32) * 32;
const ceil32 = (n: number) => Math.ceil(n / 32) * 32;
const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/** A measured memory footprint and where it was published: the floors of the reservations below. */
export interface Footprint {
  mib: number;
  what: string;
  source: string;
}

// K3s docs, "Resource Profiling" (docs.k3s.io/reference/resource-profiling), Pi 4B (BCM2711), Kine/SQLite, 95th
// percentile of the k3s service (K3s + containerd), "K3s server with a workload": 768 M on K3s v1.19.2 (the page's
// earlier revision) and 1588 M on K3s v1.26.5 (its current one). Both ran the same kind of stack: every packaged
// component (Traefik, Klipper LB, local-path), a Prometheus/Grafana stack and an example app. The floor is the
// v1.19.2 figure because it is the one a 2 GB board can hold; neither measured what edgeforge runs (traefik,
// servicelb and metrics-server disabled, no monitoring stack), so the plan calls it an assumption. Agent: v1.26.5, 268 M.
export const K3S_SERVER_FOOTPRINT: Footprint = {
  mib: 768,
  what: 'K3s server with SQLite and a workload, Pi 4B',
  source:
    'K3s docs, "Resource Profiling" (docs.k3s.io/reference/resource-profiling): 768 M measured on K3s v1.19.2 (the page\'s earlier revision), 1588 M on K3s v1.26.5 (its current one), both with every packaged component, a Prometheus/Grafana stack and an example app on the node. The budget uses the v1.19.2 figure because 1588 M would leave a 2 GB board almost nothing for the OS, Flux and workloads; neither is a measurement of what edgeforge runs (traefik, servicelb and metrics-server disabled, no monitoring stack) — an assumption to check on a real board (`systemd-cgtop`, k3s.service)',
};
export const K3S_AGENT_FOOTPRINT: Footprint = { mib: 268, what: 'K3s agent, Pi 4B', source: 'K3s docs, "Resource Profiling" (docs.k3s.io/reference/resource-profiling): measured on K3s v1.26.5' };
// Raspberry Pi OS Lite 64-bit, Bookworm (Debian 12), on a Pi Zero 2 W, ~6 minutes after boot with SSH enabled:
// 125.4 MiB used (one top snapshot), docs.printercow.com/guide/32bit-vs-64bit.html (updated 4 May 2025)
export const OS_FOOTPRINT: Footprint = {
  mib: 126,
  what: 'Raspberry Pi OS Lite 64-bit (Bookworm), idle with sshd',
  source:
    '"32-bit vs 64-bit Raspberry Pi OS Lite", docs.printercow.com/guide/32bit-vs-64bit.html, 4 May 2025: Raspberry Pi OS Bookworm Lite arm64 on a Pi Zero 2 W, 125.4 MiB used (top) about 6 minutes after boot with SSH',
};

export function tuningFor(profile: Profile, role: 'server' | 'agent'): Tuning {
  const ram = profile.ramMiB;
  // OS, sshd, journald, containerd shims: never below the measured idle OS, grows slowly with RAM
  const systemReservedMiB = Math.max(ceil32(OS_FOOTPRINT.mib), round32(clamp(ram * 0.06, 128, 512)));
  // K3s runs apiserver, controller-manager, scheduler, kubelet and SQLite in one process: never below its
  // measured footprint (above), more on larger boards that run more pods
  const k3s = role === 'server' ? K3S_SERVER_FOOTPRINT : K3S_AGENT_FOOTPRINT;
  const kubeReservedMiB = Math.max(ceil32(k3s.mib), round32(role === 'server' ? clamp(ram * 0.2, 384, 1024) : clamp(ram * 0.1, 192, 512)));
  // hard eviction before the kernel OOM killer picks K3s itself; soft gives pods a graceful exit first
  const evictionHardMiB = Math.ceil(clamp(ram * 0.05, 100, 256) / 32) * 32;
  const evictionSoftMiB = evictionHardMiB * 2;
  // each pod costs ~10-20 MB of kubelet/containerd overhead; K3s's default of 110 over-commits a 2 GB board
  const maxPods = profile.maxPods ?? (ram <= 2048 ? 40 : ram <= 4096 ? 80 : 110);
  // SD cards wear out: small logs, few rotations
  const small = ram <= 2048;
  return {
    ramMiB: ram,
    role,
    systemReservedMiB,
    kubeReservedMiB,
    evictionHardMiB,
    evictionSoftMiB,
    maxPods,
    logMaxSize: small ? '5Mi' : '10Mi',
    logMaxFiles: small ? 2 : 3,
    imageGcHigh: 75,
    imageGcLow: 60,
    usableMiB: usableRam(profile).mib,
    allocatableMiB: usableRam(profile).mib - systemReservedMiB - kubeReservedMiB - evictionHardMiB,
  };
}

/** kubelet arguments, in a fixed order (deterministic bytes). */
export function kubeletArgs(t: Tuning): string[] {
  return [
    // K3s's default eviction-hard has only disk thresholds; setting it replaces the whole set, so restate them
    `eviction-hard=memory.available<${t.evictionHardMiB}Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%`,
    `eviction-soft=memory.available<${t.evictionSoftMiB}Mi,nodefs.available<15%,imagefs.available<20%`,
    'eviction-soft-grace-period=memory.available=1m30s,nodefs.available=2m,imagefs.available=2m',
    'eviction-max-pod-grace-period=60',
    'eviction-pressure-transition-period=2m',
    `system-reserved=cpu=100m,memory=${t.systemReservedMiB}Mi`,
    `kube-reserved=cpu=${t.role === 'server' ? '200m' : '100m'},memory=${t.kubeReservedMiB}Mi`,
    `image-gc-high-threshold=${t.imageGcHigh}`,
    `image-gc-low-threshold=${t.imageGcLow}`,
    `container-log-max-size=${t.logMaxSize}`,
    `container-log-max-files=${t.logMaxFiles}`,
    `max-pods=${t.maxPods}`,
    // pulling one image at a time keeps peak memory and SD-card I/O bounded
    'serialize-image-pulls=true',
  ];
}

/** Sysctls `protect-kernel-defaults: true` insists on (the kubelet exits if they differ). */
export const PROTECT_KERNEL_SYSCTLS: [string, string][] = [
  ['vm.panic_on_oom', '0'],
  ['vm.overcommit_memory', '1'],
  ['kernel.panic', '10'],
  ['kernel.panic_on_oops', '1'],
];
