// What one device's run carries from phase to phase, and the options of a whole provision run.
import type { FirstbootState } from './firstboot-state.ts';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { Reporter } from '../ui/reporter.ts';
import type { DeviceBundle } from './bundle.ts';
import type { Manifest } from '../manifest/types.ts';
import type { Phase } from './errors.ts';
import type { DeviceLog } from './log.ts';
import type { GatewayPool } from './gateway.ts';
import type { RemoteProcess, Session } from './session.ts';

export type Timeouts = Record<Phase, number>;

export const DEFAULT_TIMEOUTS: Timeouts = {
  connect: 20_000,
  preflight: 30_000,
  // plus time for the bytes (see upload.ts)
  upload: 60_000,
  // the K3s install on a slow SD card takes minutes
  apply: 30 * 60_000,
  verify: 30_000,
};

export interface ProvisionHooks {
  /** called when a device enters a phase (tests inject faults here) */
  onPhase?: (id: string, phase: Phase, attempt: number) => void;
  onUploadProgress?: (id: string, bytesDone: number, bytesTotal: number) => void;
}

export interface ProvisionOptions {
  fleet: Fleet;
  manifest: Manifest;
  /** build output directory (manifest paths are relative to it; logs go under it) */
  outDir: string;
  keysDir: string;
  /** directory identityFile paths are relative to (the inventory's) */
  baseDir: string;
  only?: string[];
  dryRun?: boolean;
  trustNewHostKeys?: boolean;
  /** apply even when the device already records the current bundle hash */
  force?: boolean;
  concurrency?: number;
  /** retries after a transient failure (default 3) */
  retries?: number;
  /** first backoff delay in ms (default 1000; doubles, with jitter, capped at 30 s) */
  backoffMs?: number;
  timeouts?: Partial<Timeouts>;
  env?: NodeJS.ProcessEnv;
  reporter: Reporter;
  hooks?: ProvisionHooks;
}

/** What preflight learned; read only. */
export interface Facts {
  /** EDGEFORGE_ROOT of the session ("" on a real device) */
  root: string;
  arch: string;
  kernel: string;
  memKiB: number;
  /** free KiB for the login user (measured only when the bundle is to be delivered; 0 otherwise) */
  rootFreeKiB: number;
  stagingFreeKiB: number;
  /** <root>/var/lib/edgeforge exists already */
  stateDir: boolean;
  wireguard: boolean;
  uid: number;
  sudo: boolean;
  sha256sum: boolean;
  /** bundle hash recorded in applied.json, "" when none */
  appliedHash: string;
  /** whether applied.json must be read through sudo */
  appliedNeedsSudo: boolean;
  /** the device's first-boot status file, when the login could read it */
  firstboot?: FirstbootState;
  warnings: string[];
}

export interface DeviceRun {
  device: ResolvedDevice;
  bundle: DeviceBundle;
  opts: ProvisionOptions;
  timeouts: Timeouts;
  env: NodeJS.ProcessEnv;
  log: DeviceLog;
  gateways: GatewayPool;
  attempt: number;
  session?: Session;
  /** the device's shell: started by preflight, it waits on stdin for the go-ahead to apply */
  remote?: RemoteProcess;
  facts?: Facts;
  staging?: string;
  /** the sudo password, when ssh.sudoPasswordEnv names one (never logged or reported) */
  sudoPassword?: string;
  progress(p: { phase?: Phase; message?: string; bytesDone?: number; bytesTotal?: number }): void;
}
