// edgeforge rollout status|diff|promote: the K3s rings (issue #18, docs/day2.md).
import path from 'node:path';
import { type Command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { promote, rolloutDiff, rolloutStatus, RolloutRefused } from '../../lifecycle/rollout.ts';

const gitopsOption = { type: 'string' as const, value: 'DIR', description: 'the GitOps repository working tree: compare what its Plans hold' };

export const rolloutStatusCommand: Command = {
  name: 'rollout status',
  summary: 'which ring (canary, stable) is on which K3s version, per site',
  usage: 'rollout status [--gitops DIR] [--json]',
  common: ['inventory', 'json'],
  description: `Per ring: the K3s version the inventory gives it (k3s.canaryVersion / k3s.version), its sites and devices;
per site: its window and, with --gitops, the version and window its Plans in the working tree hold (what the
devices pull). What a device actually runs it reports itself (edgeforge status, applied.json's k3sVersion).`,
  options: { gitops: gitopsOption },
  examples: ['edgeforge rollout status --gitops ../fleet-repo'],
  async run(ctx) {
    const fleet = await loadFleet(ctx);
    const dir = ctx.options.gitops ? path.resolve(ctx.io.cwd, ctx.options.gitops as string) : undefined;
    const st = await rolloutStatus(fleet, dir);
    if (ctx.common.json) {
      ctx.io.out(JSON.stringify(st, null, 2));
      return 0;
    }
    ctx.io.out(st.inProgress ? `rollout in progress: canary ring on ${st.canary}, stable ring on ${st.stable}` : `no rollout in progress: every ring on ${st.stable}`);
    for (const r of st.rings) ctx.io.out(`  ${r.ring.padEnd(6)} ${r.version}  ${r.devices} device(s) at ${r.sites.length} site(s)`);
    ctx.io.out('');
    for (const s of st.sites) {
      const git = s.inGit === undefined ? (dir ? '  (no Plans in the tree yet)' : '') : `  Git: ${s.inGit.version ?? '?'}${s.inGit.version !== s.version ? ' (run edgeforge gitops)' : ''}`;
      ctx.io.out(`${s.site.padEnd(32)} ${s.ring.padEnd(6)} ${s.version}  window ${s.window}${git}`);
    }
    return 0;
  },
};

export const rolloutDiffCommand: Command = {
  name: 'rollout diff',
  summary: 'what `edgeforge gitops` would change in the upgrade Plans, site by site',
  usage: 'rollout diff --gitops DIR [--json]',
  common: ['inventory', 'json'],
  description: `Compares each site's Plans in the working tree (upgrades/<region>/<site>/plans.yaml) with what the
inventory gives it: version and maintenance window. Exit 0 when nothing would change, 1 when something would.`,
  options: { gitops: gitopsOption },
  examples: ['edgeforge rollout diff --gitops ../fleet-repo'],
  async run(ctx) {
    if (!ctx.options.gitops) throw new UsageError('--gitops DIR is required: the working tree whose Plans to compare');
    const fleet = await loadFleet(ctx);
    const changes = await rolloutDiff(fleet, path.resolve(ctx.io.cwd, ctx.options.gitops as string));
    if (ctx.common.json) ctx.io.out(JSON.stringify({ changes }, null, 2));
    else if (!changes.length) ctx.io.out('every site\'s Plans in the tree match the inventory');
    else for (const c of changes) ctx.io.out(`${c.site} (${c.ring}): ${c.field} ${c.from} -> ${c.to}`);
    return changes.length ? 1 : 0;
  },
};

export const rolloutPromote: Command = {
  name: 'rollout promote',
  summary: "move the stable ring to the canary ring's K3s version (edits the inventory)",
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
};

export const rolloutCommands = [rolloutStatusCommand, rolloutDiffCommand, rolloutPromote];
