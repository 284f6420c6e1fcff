// The plan's data model: what planData() computes and every section reads (plan.ts builds it; the sections
// and the appendix take it). Types only, in a file of their own, so the sections and plan.ts import in one direction.
import type { Tuning } from '../k3s/tuning.ts';
import type { EgressRow } from './egress.ts';
import type { GitopsAgent, MemoryBudget } from './memory.ts';
import type { MetricKey, Cell } from './load.ts';

export interface SitePlan {
  id: string;
  region: string;
  site: string;
  location?: string;
  devices: number;
  cluster: string;
  multiNode: boolean;
  network: string;
  encryption: string;
  encryptionMode: string;
  /** how the data volume behaves when the device boots offline (derived from the mode, tang servers, threshold) */
  unlock: string;
  /** the data volume cannot unlock without tang (mode, tang servers and threshold) */
  tangRequired: boolean;
  /** one-time secrets on the seed: sealed to tang, or in clear until first boot */
  secretsOnSeed: 'sealed' | 'clear';
  registryMirror?: string;
  /** where SSH is accepted from, read from the rendered nftables rules of the site's devices */
  ssh: string;
  /** the same, as the firewall's rule list words it (firewall.ts) */
  sshFrom: string;
  /** other inbound ports the rendered rules accept, or '' */
  inbound: string;
  /** those ports, named ("6443/tcp (K3s API)") */
  inboundPorts: string[];
  canary: boolean;
  fluxDevices: number;
  /** every host the site's devices connect to, at first boot and after: the firewall request (egress.ts) */
  egress: EgressRow[];
  /** what a reboot does while the site's tang server cannot be reached, and the alternative */
  tangOutage: TangOutage;
}

/** One line per device: the per-device detail the Markdown aggregates away. */
export interface DevicePlan {
  id: string;
  site: string;
  profile: string;
  role: string;
  address?: string;
  encryption: string;
  flux: boolean;
  ring: string;
}

export interface PlanData {
  fleet: {
    name: string;
    industry: string;
    description?: string;
    activeDevices: number;
    revokedDevices: number;
    regions: number;
    sites: number;
    clusters: { singleNode: number; multiNode: number; agents: number };
    fluxDevices: number;
  };
  specs: {
    profile: string;
    board: string;
    ramMiB: number;
    usableRamMiB: number;
    usableRamBasis: string;
    storage: string;
    layout: string;
    encryptionCipher: string;
    devices: number;
    roles: Record<string, number>;
  }[];
  sites: SitePlan[];
  exposure: { noInbound: boolean; text: string };
  k3s: {
    version: string;
    installMode: string;
    disable: string[];
    imageArchives: { component: string; image: string; file: string }[];
    profiles: { profile: string; role: string; devices: number; tuning: Tuning; budget: MemoryBudget; exampleDevice: string; config: string; install: string }[];
    gitopsAgent: { profile: string; agent: GitopsAgent }[];
  };
  gitops: {
    url: string;
    branch: string;
    interval: string;
    fluxVersion: string;
    controllers: string[];
    fluxDevices: number;
    pollsPerDay: number;
    mirroredPollsPerDay: number;
    idleTrafficPerDayBytes: number;
    layout: string[];
  };
  /** per site, devices with the same inbound rules grouped: exactly what their nftables.nft accepts (firewall.ts) */
  ports: { site: string; devices: string[]; proto: string; ports: string; from: string; why: string }[];
  offline: string[];
  /** per class of sites: a reboot while tang is unreachable */
  tang: string[];
  conflicts: string[];
  theft: string[];
  secrets: string;
  devices: DevicePlan[];
  /** the industry preset's settings as they stand here */
  industry: InForce[];
  decisions: Decision[];
  /** the central-load section: per transport, per metric */
  load: { transport: string; metrics: Record<MetricKey, Cell> }[];
  /** risks and work for a person found by the sections (the summary adds its own) */
  risks: string[];
  needsPerson: string[];
  day2Images: { pull: string; pinned: boolean }[];
}

export interface Decision {
  decision: string;
  threshold: string;
  why: string;
  here: string;
  /** what follows for this fleet: nothing, or the work */
  action: string;
  /** the action is work for a person */
  needsPerson: boolean;
}

export interface InForce {
  setting: string;
  value: string;
  from: string;
  effect: string;
}

export interface TangOutage {
  site: string;
  /** what a reboot does while tang is unreachable */
  reboot: string;
  /** what the hardware allows instead, or why nothing */
  option: string;
}
