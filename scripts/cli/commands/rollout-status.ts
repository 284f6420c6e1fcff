// rollout status — which ring is on which K3s version, per site (docs/day2.md).
import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { rolloutStatus as statusOf } from '../../lifecycle/rollout.ts';

const gitopsOption = { type: 'string' as const, value: 'DIR', description: 'the GitOps repository working tree: compare what its Plans hold' };

export const rolloutStatus = command('rollout status', 'which ring (canary, stable) is on which K3s version, per site', {
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
    const st = await statusOf(fleet, dir);
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
});
