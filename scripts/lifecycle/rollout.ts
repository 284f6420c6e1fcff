// K3s rollouts across the two rings (docs/day2.md): status (which ring runs which version, and
// what the GitOps tree holds), diff (what `edgeforge gitops` would change in the Plans), promote (the stable
// ring takes the canary's version: k3s.version := k3s.canaryVersion, canaryVersion removed, and in an airgap
// fleet k3s.install := k3s.install.canary's files — through the one inventory writer, comments kept).
import { promises as fs } from 'node:fs';
import type { Fleet } from '../inventory/fleet.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { windowText } from '../inventory/windows.ts';
import { ringOf, ringVersion, ringVersions, rolloutInProgress, type RingSummary } from '../render/day2/rings.ts';
import { sitesWithPlans } from '../render/day2/plans.ts';
import { plansInTree } from '../pipeline/gitops/plans-in-tree.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { InventoryError } from '../util/errors.ts';
import { removeKeyAt, setScalarAt } from './inventory-edit.ts';

export class RolloutRefused extends Error {}

export interface SiteRollout {
  site: string;
  ring: 'canary' | 'stable';
  /** the version the inventory gives the site's Plans */
  version: string;
  window: string;
  /** what the site's plans.yaml in the GitOps tree holds now (undefined: no tree given, or no file yet) */
  inGit?: { version?: string; window?: string };
}

export interface RolloutStatus {
  inProgress: boolean;
  stable: string;
  canary?: string;
  rings: RingSummary[];
  sites: SiteRollout[];
}

export async function rolloutStatus(fleet: Fleet, gitopsDir?: string): Promise<RolloutStatus> {
  const sites: SiteRollout[] = [];
  for (const s of sitesWithPlans(fleet)) {
    const ring = ringOf(s);
    sites.push({ site: s.id, ring, version: ringVersion(fleet, ring), window: windowText(s.window), inGit: gitopsDir ? await plansInTree(gitopsDir, s) : undefined });
  }
  return { inProgress: rolloutInProgress(fleet), stable: fleet.k3s.version, canary: fleet.k3s.canaryVersion, rings: ringVersions(fleet), sites };
}

export interface PlanChange {
  site: string;
  ring: string;
  field: 'version' | 'window' | 'plans';
  from: string;
  to: string;
}

/** What `edgeforge gitops --to DIR` would change in the Plans, site by site (nothing for a site already in step). */
export async function rolloutDiff(fleet: Fleet, gitopsDir: string): Promise<PlanChange[]> {
  const out: PlanChange[] = [];
  for (const s of (await rolloutStatus(fleet, gitopsDir)).sites) {
    const g = s.inGit;
    if (!g) out.push({ site: s.site, ring: s.ring, field: 'plans', from: '(none)', to: `K3s ${s.version}, ${s.window}` });
    else {
      if (g.version !== s.version) out.push({ site: s.site, ring: s.ring, field: 'version', from: g.version ?? '(none)', to: s.version });
      if (g.window !== s.window) out.push({ site: s.site, ring: s.ring, field: 'window', from: g.window ?? '(none)', to: s.window });
    }
  }
  return out;
}

/** The inventory text after promotion, checked by loading it (nothing is written when it would not load). */
export function promotedInventory(text: string, file: string): { text: string; from: string; to: string; airgapBundle?: string } {
  const fleet = loadInventoryBytes(Buffer.from(text), file);
  const canary = fleet.k3s.canaryVersion;
  if (!canary) throw new RolloutRefused(`no rollout in progress: k3s.canaryVersion is not set in ${file} (set it, run \`edgeforge gitops\`, watch the canary sites, then promote)`);
  if (canary === fleet.k3s.version) throw new RolloutRefused(`the canary ring already runs the stable version ${canary}: nothing to promote (remove k3s.canaryVersion)`);
  let next = setScalarAt(text, ['k3s', 'version'], canary);
  next = removeKeyAt(next, ['k3s', 'canaryVersion']);
  // airgap: the canary release's files become the stable ring's, so devices built afterwards install it
  const inst = fleet.k3s.install;
  const files = inst.mode === 'airgap' ? inst.canary : undefined;
  if (files) {
    next = setScalarAt(next, ['k3s', 'install', 'bundle'], files.bundle);
    for (const f of ['binary', 'images', 'installScript'] as const) next = setScalarAt(next, ['k3s', 'install', 'sha256', f], files.sha256[f]);
    next = removeKeyAt(next, ['k3s', 'install', 'canary']);
  }
  try {
    const after = loadInventoryBytes(Buffer.from(next), file);
    if (after.k3s.version !== canary || after.k3s.canaryVersion !== undefined) throw new Error('the edit did not take');
    const ai = after.k3s.install;
    if (
      files &&
      (ai.mode !== 'airgap' ||
        ai.canary ||
        ai.bundle !== files.bundle ||
        ai.sha256.binary !== files.sha256.binary ||
        ai.sha256.images !== files.sha256.images ||
        ai.sha256.installScript !== files.sha256.installScript)
    )
      throw new Error('the airgap files did not move');
  } catch (err) {
    const why = err instanceof InventoryError ? err.problems.map((p) => p.message).join('; ') : (err as Error).message;
    throw new RolloutRefused(`cannot promote ${canary}: the edited inventory would not load (${why})`);
  }
  return { text: next, from: fleet.k3s.version, to: canary, airgapBundle: files?.bundle };
}

export async function promote(inventoryFile: string, shown: string): Promise<{ from: string; to: string; airgapBundle?: string }> {
  const text = await fs.readFile(inventoryFile, 'utf8');
  const r = promotedInventory(text, shown);
  await writeFileAtomic(inventoryFile, Buffer.from(r.text, 'utf8'), { mode: (await fs.stat(inventoryFile)).mode & 0o777 });
  return { from: r.from, to: r.to, airgapBundle: r.airgapBundle };
}
