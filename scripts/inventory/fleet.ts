// The resolved fleet: what every later stage works from. Defaults are cascaded, names checked,
// clusters worked out; nothing downstream needs to know where a value was written.
import type { MaintenanceWindow } from './windows.ts';
import type { SitePolicy } from './industry.ts';
import type { ImageArchivePin, Position } from './image-archives.ts';
import type { StatusConfig } from './fleet-status.ts';
import type { Encryption, Gitops, Inventory, K3s, OsSettings, Profile, RegistryMirror, Ssh, User, DeviceStatus } from './schema.ts';

export type ResolvedNetwork =
  | { mode: 'dhcp'; interface: string; dns: string[]; search: string[] }
  | { mode: 'static'; interface: string; address: string; ip: string; prefix: number; gateway: string; dns: string[]; search: string[] };

export type ClusterRole = { kind: 'single-node' } | { kind: 'multi-node-server'; agents: string[] } | { kind: 'multi-node-agent'; serverId: string; serverUrl: string };

export interface ResolvedDevice {
  id: string;
  serial: string;
  /** lower-case, colon separated */
  mac: string;
  region: string;
  site: string;
  /** "<region>/<site>" */
  siteId: string;
  profileName: string;
  profile: Profile;
  role: 'server' | 'agent';
  cluster: ClusterRole;
  status: DeviceStatus;
  replacedBy?: string;
  revoked?: { reason: 'stolen' | 'lost' | 'retired'; at: string };
  network: ResolvedNetwork;
  ssh: Ssh;
  encryption: Required<Pick<Encryption, 'mode'>> & { tang: NonNullable<Encryption['tang']>; threshold: number };
  registryMirror?: RegistryMirror;
  managementSubnet?: string;
  timezone: string;
  ntp: string[];
  users: User[];
  labels: Record<string, string>;
  canary: boolean;
  notes?: string;
  /** where the device is written, for error messages */
  source: { line: number; col: number; path: (string | number)[] };
}

export interface ResolvedSite {
  region: string;
  name: string;
  id: string;
  description?: string;
  location?: string;
  canary: boolean;
  /** where the ring came from: "site", or the preset's share when no site says canary: */
  canarySource: string;
  /** the maintenance window in force (declared or the industry default) and where it came from */
  window: MaintenanceWindow;
  /** encryption requirement and offline tolerance in force (declared or the industry preset) and where they came from */
  policy: SitePolicy;
  devices: ResolvedDevice[];
}

export interface Fleet {
  /** the inventory file as given on the command line */
  file: string;
  inventorySha256: string;
  name: string;
  industry: string;
  description?: string;
  profiles: Record<string, Profile>;
  k3s: K3s;
  gitops: Gitops;
  /** OS updates in A/B slots (docs/os-updates.md); absent: single-root cards */
  os?: OsSettings;
  /** fleet status reporting (docs/status.md), resolved from `status:` (inventory/fleet-status.ts); absent: off */
  status?: StatusConfig;
  admins: Inventory['admins'];
  regions: { name: string; description?: string; sites: ResolvedSite[] }[];
  sites: ResolvedSite[];
  /** every device in inventory order, whatever its status */
  devices: ResolvedDevice[];
  /** devices that get artifacts: status active */
  active: ResolvedDevice[];
  /** every component's pinned container image archives (scripts/inventory/image-archives.ts), in inventory order */
  imageArchives: ImageArchivePin[];
  /** per component, where its archive list is (or would be) written: for problems about the list as a whole */
  imageArchiveLists: Record<string, Position>;
  /** where each profile's RAM is written (usableRamMiB when set, else ramMiB): for the memory-budget refusal */
  profileRamAt: Record<string, Position>;
  /** the parsed inventory, for commands that report on raw values */
  inventory: Inventory;
}
