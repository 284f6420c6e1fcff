// rollout promote — the stable ring takes the canary ring's K3s version (docs/day2.md).
import path from 'node:path';
import { command } from '../command.ts';
import { UserError } from '../../util/errors.ts';
import { promote, RolloutRefused } from '../../lifecycle/rollout.ts';
import { loadInventoryFile } from '../../inventory/load.ts';
import { k3sUpgradeImage } from '../../render/day2/upgrade-images.ts';

export const rolloutPromote = command('rollout promote', "move the stable ring to the canary ring's K3s version (edits the inventory)", {
  usage: 'rollout promote [-i FILE]',
  common: ['inventory', 'json'],
  description: `Sets k3s.version to k3s.canaryVersion and removes canaryVersion, keeping the inventory's comments and layout.
Airgap fleets: the canary release's airgap files (k3s.install.canary) become k3s.install's, so devices built
afterwards install the promoted release. Then run \`edgeforge gitops --to DIR\` and push: every stable site's
Plans move in its own maintenance window. Refused with nothing changed (exit 2) when no rollout is in progress.
Airgap fleets: stage the new k3s-upgrade image in every stable site's mirror first (\`edgeforge plan\`, Day 2).`,
  examples: ['edgeforge rollout promote -i inventory/acme.yaml'],
  async run(ctx) {
    const file = path.resolve(ctx.io.cwd, ctx.common.inventory);
    let r;
    try {
      r = await promote(file, ctx.common.inventory);
    } catch (err) {
      if (err instanceof RolloutRefused) throw new UserError(`${err.message}. Nothing was changed.`);
      throw err;
    }
    // an airgap fleet: what must be in the stable sites' mirrors before the new Plans are pushed
    const fleet = await loadInventoryFile(file, ctx.common.inventory);
    const stage =
      fleet.k3s.install.mode === 'airgap'
        ? [`the new k3s-upgrade image ${k3sUpgradeImage(fleet, r.to).pull} in the registry mirror of every stable site, and its archive in k3s.upgrade.images (edgeforge plan, Day 2)`]
        : [];
    if (ctx.common.json)
      ctx.io.out(JSON.stringify({ promoted: r.to, from: r.from, inventory: ctx.common.inventory, ...(r.airgapBundle ? { airgapBundle: r.airgapBundle } : {}), stageFirst: stage }, null, 2));
    else {
      ctx.io.out(
        `${ctx.common.inventory}: k3s.version ${r.from} -> ${r.to}, canaryVersion removed${r.airgapBundle ? `; k3s.install now holds ${r.to}'s airgap files (${r.airgapBundle}, from k3s.install.canary)` : ''}.`,
      );
      if (r.airgapBundle) ctx.io.out(`Rebuild images (edgeforge build --base-image …) so new devices of every site carry ${r.to}.`);
      for (const x of stage) ctx.io.out(`Airgap fleet — before pushing, stage ${x}.`);
      ctx.io.out('Next: edgeforge gitops --to DIR, commit, push: every stable site upgrades in its own window.');
    }
    return 0;
  },
});
