// rollout promote — the stable ring takes the canary ring's K3s version (issue #18, docs/day2.md).
import path from 'node:path';
import { command } from '../command.ts';
import { UserError } from '../../util/errors.ts';
import { promote, RolloutRefused } from '../../lifecycle/rollout.ts';

export const rolloutPromote = command('rollout promote', "move the stable ring to the canary ring's K3s version (edits the inventory)", {
  usage: 'rollout promote [-i FILE]',
  common: ['inventory', 'json'],
  description: `Sets k3s.version to k3s.canaryVersion and removes canaryVersion, keeping the inventory's comments and layout.
Then run \`edgeforge gitops --to DIR\` and push: every stable site's Plans move in its own maintenance window.
Refused with nothing changed (exit 2) when no rollout is in progress. Airgap fleets: stage the new k3s-upgrade
image in every stable site's mirror first (\`edgeforge plan\`, Day 2, lists it).`,
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
    if (ctx.common.json) ctx.io.out(JSON.stringify({ promoted: r.to, from: r.from, inventory: ctx.common.inventory }, null, 2));
    else ctx.io.out(`${ctx.common.inventory}: k3s.version ${r.from} -> ${r.to}, canaryVersion removed. Next: edgeforge gitops --to DIR, commit, push.`);
    return 0;
  },
});
