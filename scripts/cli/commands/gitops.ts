// edgeforge gitops --to DIR: write or update the fleet's GitOps working tree without clobbering what
// operators own (scripts/render/gitops/update.ts has the rules; docs/gitops.md explains them).
import path from 'node:path';
import { command } from '../command.ts';
import { UsageError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { updateGitopsRepo } from '../../pipeline/gitops/update.ts';
import { loadGitopsPublicKeys } from '../../pipeline/inputs/public-keys.ts';
import { openKeyStore } from '../../keys/store.ts';
import { syncJoinTokens, type JoinTokenSync } from '../../lifecycle/join-tokens.ts';

export const gitops = command('gitops', 'write or update the GitOps repository working tree', {
  usage: 'gitops --to DIR [--prune] [--dry-run]',
  common: ['inventory', 'keys', 'json'],
  description: `Creates missing files; rewrites the files edgeforge owns (their first line says edgeforge:managed);
never touches a file without that line, and never deletes one. Managed files the inventory no longer produces
(a revoked device) are reported as stale and removed only with --prune. Reads public keys only, except for a
multi-node site's agent join tokens (clusters/…/<server>/join-tokens/): each agent's own K3s bootstrap token,
SOPS-encrypted to its server's key, expiring k3s.joinWindow after SOURCE_DATE_EPOCH (or now); written when an admin
key unlocks keys/, kept while current, else reported as a warning.`,
  options: {
    to: { type: 'string', value: 'DIR', description: 'the repository working tree (created if missing)' },
    prune: { type: 'boolean', description: 'delete managed files the inventory no longer produces' },
    'dry-run': { type: 'boolean', description: 'report what would change; write nothing' },
  },
  examples: ['edgeforge gitops --to ../fleet-repo', 'edgeforge gitops --to ../fleet-repo --dry-run --json'],
  async run(ctx) {
    const to = ctx.options.to as string | undefined;
    if (!to) throw new UsageError('--to DIR is required: the GitOps repository working tree to write');
    const fleet = await loadFleet(ctx);
    const dryRun = Boolean(ctx.options['dry-run']);
    const res = await updateGitopsRepo(fleet, { inventory: ctx.common.inventory, cwd: ctx.io.cwd, keysDir: ctx.common.keys, dir: path.resolve(ctx.io.cwd, to), prune: Boolean(ctx.options.prune), dryRun });
    // agents' join tokens: encrypted with the agents' private identities, so only when an admin key unlocks keys/
    let join: JoinTokenSync | undefined;
    if (!dryRun && fleet.active.some((d) => d.cluster.kind === 'multi-node-server')) {
      const keysDir = path.resolve(ctx.io.cwd, ctx.common.keys);
      const keys = await loadGitopsPublicKeys(keysDir, fleet);
      const ks = await openKeyStore({ dir: keysDir, workers: 0 }).catch(() => undefined);
      try {
        const unlocked = ks && (await ks.unlock().then(() => true, () => false)) ? ks : undefined;
        const epoch = ctx.io.env.SOURCE_DATE_EPOCH && /^\d+$/.test(ctx.io.env.SOURCE_DATE_EPOCH) ? Number(ctx.io.env.SOURCE_DATE_EPOCH) : Math.floor(Date.now() / 1000);
        join = await syncJoinTokens(path.resolve(ctx.io.cwd, to), fleet, keys, unlocked, epoch);
      } finally {
        await ks?.close();
      }
      if (join.pending.length) res.warnings.push(`agent join tokens not written (needs an admin key: EDGEFORGE_ADMIN_KEY): ${join.pending.join(', ')}`);
    }
    const by = (a: string) => res.entries.filter((e) => e.action === a).map((e) => e.path);
    const summary = {
      to,
      dryRun,
      created: by('create'),
      updated: by('update'),
      unchanged: by('unchanged').length,
      kept: res.entries.filter((e) => e.action === 'kept').map((e) => ({ path: e.path, reason: e.reason })),
      stale: by('stale'),
      deleted: by('delete'),
      warnings: res.warnings,
      joinTokens: join ? { written: join.written, deleted: join.deleted, unchanged: join.unchanged.length, pending: join.pending } : null,
    };
    if (ctx.common.json) ctx.io.out(JSON.stringify(summary, null, 2));
    else {
      const verb = dryRun ? 'would ' : '';
      for (const p of summary.created) ctx.io.out(`${verb}create  ${p}`);
      for (const p of summary.updated) ctx.io.out(`${verb}update  ${p}`);
      for (const k of summary.kept.filter((k) => k.reason !== 'operator-owned')) ctx.io.out(`kept    ${k.path} (${k.reason})`);
      for (const p of summary.stale) ctx.io.out(`stale   ${p} (run with --prune to delete)`);
      for (const p of summary.deleted) ctx.io.out(`${verb}delete  ${p}`);
      for (const p of join?.written ?? []) ctx.io.out(`write   ${p} (join tokens)`);
      for (const p of join?.deleted ?? []) ctx.io.out(`delete  ${p} (join token of an agent no longer active)`);
      for (const w of summary.warnings) ctx.io.err(`warning: ${w}`);
      ctx.io.out(
        `${to}: ${summary.created.length} created, ${summary.updated.length} updated, ${summary.unchanged} unchanged, ${summary.kept.length} kept (operator-owned), ${summary.stale.length} stale, ${summary.deleted.length} deleted${dryRun ? ' (dry run: nothing written)' : ''}`,
      );
    }
    return 0;
  },
});
