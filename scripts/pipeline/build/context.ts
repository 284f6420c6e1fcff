// What a build carries from phase to phase (inputs -> select -> keys -> render -> gitops -> commit, index.ts),
// the options it starts from and the result it ends with. Each phase is one file: `(run: BuildRun) => Promise<void>`,
// reading what the phases before it left here and adding its own part.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import type { DeviceSecrets, RenderOptions } from '../../render/device.ts';
import type { Manifest, ManifestDevice } from '../../manifest/types.ts';
import type { DeviceResult, Reporter } from '../../ui/reporter.ts';
import type { PreparedBase } from '../../disk/base.ts';
import type { SecretsSource } from '../secrets.ts';
import type { StagedAirgap } from '../inputs/airgap.ts';
import type { PreviousBuild } from '../select/unchanged.ts';
import { discardStaged, type StagedDevice } from '../write.ts';
import { UserError } from '../../util/errors.ts';

/** The device stages renderDevice runs and the OUT/gitops scaffold: stages.ts makes them from the inventory. */
export interface BuildStages {
  render: RenderOptions;
  /** writes OUT/gitops and returns the manifest's gitops entry; absent: no scaffold */
  scaffold?: (fleet: Fleet, outDir: string) => Promise<{ path: string } | undefined>;
}

export interface BuildOptions {
  fleet: Fleet;
  /** absolute path of the inventory (the airgap bundle is relative to it) */
  inventoryPath: string;
  outDir: string;
  only?: string[];
  /** --shard K/N: this machine builds the devices whose id hashes to shard K (CI matrices); shard 1 also writes gitops/ */
  shard?: { k: number; n: number };
  /** --changed-since: `only` lists the changed devices; the previous manifest's other active devices are kept */
  incremental?: boolean;
  /** --base-image: path as given, and resolved */
  baseImage?: { given: string; path: string };
  sourceDateEpoch: number;
  concurrency: number;
  reporter: Reporter;
  secrets: SecretsSource;
  /** default: no stage beyond the core files and no scaffold (tests); `edgeforge build` passes stages.ts's */
  stages?: BuildStages;
  /** render every device even when its inputs are unchanged */
  force?: boolean;
}

export interface BuildResult {
  results: DeviceResult[];
  manifest: Manifest;
  manifestPath: string;
  signed: { fingerprint: string } | undefined;
  /** devices not rendered: inputs unchanged since the previous build */
  skipped: number;
  /** wall seconds per stage (render, images and write summed over devices; with --base-image they overlap) */
  timings: Record<string, number>;
}

export interface BuildRun {
  readonly o: BuildOptions;
  readonly fleet: Fleet;
  readonly stages: BuildStages;
  readonly devicesDir: string;
  /** select: the devices this build covers */
  devices: ResolvedDevice[];
  /** inputs: --base-image checked against the pins, and the bases derived from it */
  baseImage?: Manifest['baseImage'];
  diskBase?: PreparedBase;
  airgap?: StagedAirgap;
  /** lines for the operator once the progress view opens */
  notes: string[];
  previous?: PreviousBuild;
  /** select: each device's inputs hash (undefined: unknown identity, always rendered) */
  inputs: Map<string, string | undefined>;
  inputsOf: (ds: ResolvedDevice[]) => Promise<Map<string, string | undefined>>;
  unchanged: Map<string, ManifestDevice>;
  toRender: ResolvedDevice[];
  /** keys */
  secrets: Map<string, DeviceSecrets>;
  /** render: the manifest entries (unchanged ones first) and the staged device directories */
  entries: Map<string, ManifestDevice>;
  staged: StagedDevice[];
  /** the output cannot be written: every device after it fails, nothing is committed */
  fatal?: Error;
  baseRecorded: boolean;
  gitops?: { path: string };
  timings: Record<string, number>;
}

export type BuildPhase = (run: BuildRun) => Promise<void>;

/** Runs f and adds its wall seconds to the stage's timing. */
export async function timed<T>(run: BuildRun, stage: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    run.timings[stage] = (run.timings[stage] ?? 0) + (performance.now() - t0) / 1000;
  }
}

/** errors of the output's filesystem: the whole build stops, the previous output stays */
const OUTPUT_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EFBIG', 'EMLINK']);

export function isOutputError(err: unknown): boolean {
  return OUTPUT_ERRORS.has((err as NodeJS.ErrnoException).code ?? '');
}

/** A failure of the output directory itself, said with its path and what was kept. */
export function outputError(outDir: string, err: unknown): Error {
  if (err instanceof UserError) return err;
  const e = err as NodeJS.ErrnoException;
  const where = e.path ? ` (${e.path})` : '';
  return new UserError(`cannot write the build output in ${outDir}${where}: ${e.message}. The previous output and manifest in ${outDir} are unchanged.`, 1);
}

/** Nothing live has changed yet: an output that cannot be written leaves the previous build as it was. */
export async function abort(run: BuildRun, err: unknown): Promise<never> {
  await discardStaged(run.staged);
  throw outputError(run.o.outDir, err);
}
