// The device stages of `edgeforge build`, made once from the inventory and the files beside it: the Flux
// bootstrap (the pinned bundle and registry CA), disk encryption (the saved tang advertisements), fleet status
// (the broker CA), OS updates (the fleet's OS-update certificate in the keys directory); and the GitOps
// scaffold. What each stage declares it reads is hashed into every device's inputs (declaredInputs).
import type { Fleet } from '../../inventory/fleet.ts';
import { STAGE_SLOTS, type RenderOptions } from '../../render/device.ts';
import { osStage } from '../../render/day2/stages.ts';
import { prepareFlux, writeGitopsScaffold } from '../flux.ts';
import { prepareEncryption, unsealedWarnings } from '../encryption.ts';
import { prepareStatus } from '../status-reporter.ts';
import { osCertificate } from '../os/build.ts';
import type { BuildStages } from './context.ts';

export interface StageSources {
  fleet: Fleet;
  inventoryPath: string;
  keysDir: string;
  sourceDateEpoch: number;
  /** the devices this build covers (for the unsealed-secrets warning); all active ones when absent */
  only?: string[];
  /** warnings the operator must see (no Flux bootstrap, unsealed secrets, no GitOps scaffold) */
  warn: (line: string) => void;
}

/** Reads and checks every stage's inputs before anything is written (a wrong pin: exit 2, nothing written). */
export async function prepareStages(s: StageSources): Promise<BuildStages> {
  const { fleet, inventoryPath, warn } = s;
  const flux = await prepareFlux(fleet, inventoryPath);
  if (flux.problem) warn(`WARNING: no Flux bootstrap in this build: ${flux.problem}`);
  const encryption = await prepareEncryption(fleet, inventoryPath, fleet.active, s.sourceDateEpoch);
  for (const w of unsealedWarnings(fleet, s.only)) warn(w);
  const status = await prepareStatus(fleet, inventoryPath);
  // OS updates: the devices' keyring holds the fleet's OS-update certificate
  const osCert = await osCertificate(fleet, s.keysDir);
  return {
    render: { flux: flux.render?.flux, status, os: osCert ? osStage(osCert) : undefined, encryption },
    scaffold: async (f, outDir) => {
      const g = await writeGitopsScaffold(f, s.keysDir, outDir, flux.input);
      if (g.note) warn(`WARNING: ${g.note}`);
      return g.path ? { path: g.path } : undefined;
    },
  };
}

/** What every stage slot declares it reads (null: no such stage in this build), for the inputs hash. */
export function declaredInputs(render: RenderOptions): Record<string, Record<string, string | null> | null> {
  return Object.fromEntries(STAGE_SLOTS.map((slot) => [slot, render[slot]?.inputs ?? null]));
}
