// The inventory's day-2 settings checked as a whole (issue #18): K3s versions per ring, a rollout's rings,
// maintenance windows. Each problem is [data path, message]; resolve.ts positions them (FILE:LINE:COL).
import type { Inventory } from './schema.ts';
import type { PathKey } from './problems.ts';
import { compareK3s, k3sVersionProblem } from './k3s-versions.ts';
import { windowProblems } from './windows.ts';

export function day2Problems(inv: Inventory, activeBySite: Map<string, number>): [PathKey[], string][] {
  const out: [PathKey[], string][] = [];
  const k = inv.k3s;
  const vProblem = k3sVersionProblem(k.version);
  if (vProblem) out.push([['k3s', 'version'], vProblem]);
  if (k.canaryVersion !== undefined) {
    const cProblem = k3sVersionProblem(k.canaryVersion);
    if (cProblem) out.push([['k3s', 'canaryVersion'], cProblem]);
    else if (!vProblem && compareK3s(k.canaryVersion, k.version) < 0) {
      out.push([['k3s', 'canaryVersion'], `downgrade refused: canaryVersion ${k.canaryVersion} is older than the stable ring's ${k.version}; K3s does not support going back (its datastore may already be migrated). Remove canaryVersion to stop a rollout that has not been promoted`]);
    }
    if (k.canaryVersion !== k.version) {
      const rings = { canary: 0, stable: 0 };
      for (const [r, region] of Object.entries(inv.regions))
        for (const [s, site] of Object.entries(region.sites)) rings[site.canary ? 'canary' : 'stable'] += activeBySite.get(`${r}/${s}`) ?? 0;
      if (!rings.canary) out.push([['k3s', 'canaryVersion'], `a rollout to ${k.canaryVersion} needs a canary ring, and no site with canary: true has an active device: mark a site canary: true, or set k3s.version directly`]);
      if (!rings.stable) out.push([['k3s', 'canaryVersion'], `every active device is in the canary ring, so the stable ring has no devices to hold back: set k3s.version to ${k.canaryVersion} instead`]);
    }
  }
  const windows: [PathKey[], Inventory['defaults']][] = [[['defaults'], inv.defaults]];
  for (const [r, region] of Object.entries(inv.regions)) {
    windows.push([['regions', r], region]);
    for (const [s, site] of Object.entries(region.sites)) windows.push([['regions', r, 'sites', s], site]);
  }
  for (const [path, holder] of windows) {
    const w = holder?.maintenanceWindow;
    if (w) for (const [p, msg] of windowProblems(w)) out.push([[...path, 'maintenanceWindow', ...p], msg]);
  }
  return out;
}
