// The inventory's day-2 settings checked as a whole: K3s versions per ring, a rollout's rings,
// maintenance windows. Each problem is [data path, message]; resolve.ts positions them (FILE:LINE:COL).
import path from 'node:path';
import type { Inventory } from './schema.ts';
import type { PathKey } from './problems.ts';
import { compareK3s, k3sVersionProblem } from './k3s-versions.ts';
import { windowProblems } from './windows.ts';
import { presetCanarySites } from './industry.ts';

export function day2Problems(inv: Inventory, activeBySite: Map<string, number>): [PathKey[], string][] {
  const out: [PathKey[], string][] = [];
  const k = inv.k3s;
  const vProblem = k3sVersionProblem(k.version);
  if (vProblem) out.push([['k3s', 'version'], vProblem]);
  if (k.canaryVersion !== undefined) {
    const cProblem = k3sVersionProblem(k.canaryVersion);
    if (cProblem) out.push([['k3s', 'canaryVersion'], cProblem]);
    else if (!vProblem && compareK3s(k.canaryVersion, k.version) < 0) {
      out.push([
        ['k3s', 'canaryVersion'],
        `downgrade refused: canaryVersion ${k.canaryVersion} is older than the stable ring's ${k.version}; K3s does not support going back (its datastore may already be migrated). Remove canaryVersion to stop a rollout that has not been promoted`,
      ]);
    }
    if (k.canaryVersion !== k.version) {
      const rings = { canary: 0, stable: 0 };
      const picked = presetCanarySites(inv).sites; // the industry preset's ring when no site says canary:
      for (const [r, region] of Object.entries(inv.regions))
        for (const [s, site] of Object.entries(region.sites)) rings[(site.canary ?? picked.has(`${r}/${s}`)) ? 'canary' : 'stable'] += activeBySite.get(`${r}/${s}`) ?? 0;
      if (!rings.canary)
        out.push([
          ['k3s', 'canaryVersion'],
          `a rollout to ${k.canaryVersion} needs a canary ring, and no site with canary: true has an active device: mark a site canary: true, or set k3s.version directly`,
        ]);
      if (!rings.stable)
        out.push([['k3s', 'canaryVersion'], `every active device is in the canary ring, so the stable ring has no devices to hold back: set k3s.version to ${k.canaryVersion} instead`]);
    }
  }
  out.push(...airgapReleaseProblems(inv));
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

/**
 * An airgap fleet's canary ring installs k3s.canaryVersion from its own airgap files (k3s.install.canary), so
 * a new device's seed and its site's Plans agree: a rollout needs them, and they are only for a rollout.
 */
function airgapReleaseProblems(inv: Inventory): [PathKey[], string][] {
  const k = inv.k3s;
  const i = k.install;
  if (i.mode !== 'airgap') return [];
  const rollout = k.canaryVersion !== undefined && k.canaryVersion !== k.version;
  if (rollout && !i.canary) {
    return [
      [
        ['k3s', 'canaryVersion'],
        `an airgap fleet's canary ring installs ${k.canaryVersion} at first boot from its own airgap files: add k3s.install.canary { bundle: <directory with ${k.canaryVersion}'s k3s-arm64, k3s-airgap-images-arm64.tar.zst, install.sh>, sha256: { binary, images, installScript } } (the fleet base carries both releases; \`edgeforge rollout promote\` moves them to k3s.install)`,
      ],
    ];
  }
  if (!rollout && i.canary) {
    return [
      [
        ['k3s', 'install', 'canary'],
        `k3s.install.canary is only for a rollout in progress, and k3s.canaryVersion is ${k.canaryVersion === undefined ? 'not set' : `the stable version ${k.version}`}: set k3s.canaryVersion to the release these files hold, or remove k3s.install.canary`,
      ],
    ];
  }
  const out: [PathKey[], string][] = [];
  if (i.canary) {
    // (install.sh may well be the same script in both releases)
    for (const f of ['binary', 'images'] as const) {
      if (i.canary.sha256[f] === i.sha256[f])
        out.push([
          ['k3s', 'install', 'canary', 'sha256', f],
          `the same ${f} as the stable ring's (k3s.install.sha256.${f}): the canary ring's files must be K3s ${k.canaryVersion}'s, not ${k.version}'s`,
        ]);
    }
    if (path.posix.normalize(i.canary.bundle).replace(/\/+$/, '') === path.posix.normalize(i.bundle).replace(/\/+$/, '')) {
      out.push([['k3s', 'install', 'canary', 'bundle'], `the same directory as k3s.install.bundle: each release's airgap files need their own directory (they have the same names)`]);
    }
  }
  return out;
}
