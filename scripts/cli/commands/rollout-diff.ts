// rollout diff — what `edgeforge gitops` would change in the upgrade Plans (docs/day2.md).
import path from 'node:path';
import { command } from '../command.ts';
import { UsageError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { rolloutDiff as diffOf } from '../../lifecycle/rollout.ts';

export const rolloutDiff = command('rollout diff', 'what `edgeforge gitops` would change in the upgrade Plans, site by site', {
  usage: 'rollout diff --gitops DIR [--json]',
  common: ['inventory', 'json'],
  description: `Compares each site's Plans in the working tree (upgrades/<region>/<site>/plans.yaml) with what the
inventory gives it: version and maintenance window. Exit 0 when nothing would change, 1 when something would.`,
  options: { gitops: { type: 'string', value: 'DIR', description: 'the GitOps repository working tree whose Plans to compare' } },
  examples: ['edgeforge rollout diff --gitops ../fleet-repo'],
  async run(ctx) {
    if (!ctx.options.gitops) throw new UsageError('--gitops DIR is required: the working tree whose Plans to compare');
    const fleet = await loadFleet(ctx);
    const changes = await diffOf(fleet, path.resolve(ctx.io.cwd, ctx.options.gitops as string));
    if (ctx.common.json) ctx.io.out(JSON.stringify({ changes }, null, 2));
    else if (!changes.length) ctx.io.out("every site's Plans in the tree match the inventory");
    else for (const c of changes) ctx.io.out(`${c.site} (${c.ring}): ${c.field} ${c.from} -> ${c.to}`);
    return changes.length ? 1 : 0;
  },
});
