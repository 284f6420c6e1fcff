// edgeforge gitops --to DIR: write or update the fleet's GitOps working tree without clobbering what
// operators own (scripts/render/gitops/update.ts has the rules; docs/gitops.md explains them).
import path from 'node:path';
import { command, type RunContext } from '../command.ts';
import type { Fleet } from '../../inventory/fleet.ts';
import { UsageError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { writeGitops, type GitopsWrite } from '../../lifecycle/gitops-write.ts';
import { clock } from '../clock.ts';
import { timeWarnings } from '../../pipeline/inputs/expiries.ts';
import { expiryFindings } from '../../conformance/expiry.ts';

export const gitops = command('gitops', 'write or update the GitOps repository working tree, or check what it would write', {
  usage: 'gitops --to DIR [--prune] [--dry-run] | gitops --to DIR --check [--against DIR|REV] [--strict]',
  common: ['inventory', 'keys', 'json'],
  description: `Creates missing files; rewrites the files edgeforge owns (their first line says edgeforge:managed);
never touches a file without that line, and never deletes one. Managed files the inventory no longer produces
(a revoked device) are reported as stale and removed only with --prune. Reads public keys only, except for a
multi-node site's agent join tokens (clusters/…/<server>/join-tokens/): each agent's own K3s bootstrap token,
SOPS-encrypted to its server's key, expiring k3s.joinWindow after it is written; written when an admin key unlocks
keys/, kept while it has more than half its window left, else reported as a warning.

--check writes nothing: it builds the tree --to would write (in a copy) and checks it offline before anything is
pushed — every object against the upstream API of each K3s line its rings run (and ran, per the previous tree's
Plans), custom resources against the pinned upgrade controller's and Flux's CRDs, every change against the tree the
clusters applied before (--against: a directory or a Git revision of DIR; default DIR as it is) for fields the API
server never lets change, the images edgeforge's objects pull, and what expires. Exit 0 clean, 1 with one line per
problem (PATH: kind/name: reason). Warnings (an expiring join token, an image without a digest) fail only --strict.`,
  options: {
    to: { type: 'string', value: 'DIR', description: 'the repository working tree (created if missing)' },
    prune: { type: 'boolean', description: 'delete managed files the inventory no longer produces' },
    'dry-run': { type: 'boolean', description: 'report what would change; write nothing' },
    check: { type: 'boolean', description: 'check the tree it would write against the pinned upstream versions; write nothing' },
    against: { type: 'string', value: 'DIR|REV', description: 'with --check: the tree the clusters applied before (default: DIR as it is)' },
    strict: { type: 'boolean', description: 'with --check: warnings fail too' },
  },
  examples: ['edgeforge gitops --to ../fleet-repo', 'edgeforge gitops --to ../fleet-repo --dry-run --json', 'edgeforge gitops --to ../fleet-repo --check --against origin/main'],
  async run(ctx) {
    const to = ctx.options.to as string | undefined;
    if (!to) throw new UsageError('--to DIR is required: the GitOps repository working tree to write');
    if (!ctx.options.check && (ctx.options.against || ctx.options.strict)) throw new UsageError('--against and --strict go with --check');
    const fleet = await loadFleet(ctx);
    const o = { inventory: ctx.common.inventory, cwd: ctx.io.cwd, keysDir: ctx.common.keys, dir: path.resolve(ctx.io.cwd, to), prune: Boolean(ctx.options.prune), now: clock(ctx.io) };
    if (ctx.options.check) return check(ctx, fleet, o, to);
    const dryRun = Boolean(ctx.options['dry-run']);
    const res = await writeGitops(fleet, { ...o, dryRun });
    res.warnings.push(...(await timeWarnings(fleet, path.resolve(ctx.io.cwd, ctx.common.inventory), o.now)), ...expiryFindings(res.expiries, o.now).map((e) => e.message));
    const join = res.joinTokens;
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

async function check(ctx: RunContext, fleet: Fleet, o: Omit<GitopsWrite, 'dryRun'>, to: string): Promise<number> {
  const { checkGitops } = await import('../../lifecycle/gitops-check.ts');
  const r = await checkGitops(fleet, { ...o, against: ctx.options.against as string | undefined, timeWarnings: await timeWarnings(fleet, path.resolve(ctx.io.cwd, ctx.common.inventory), o.now) });
  const strict = Boolean(ctx.options.strict);
  const failed = r.errors.length > 0 || (strict && r.warnings.length > 0);
  if (ctx.common.json) ctx.io.out(JSON.stringify({ to, ok: !failed, errors: r.errors, warnings: r.warnings, checked: r.checked }, null, 2));
  else {
    for (const e of r.errors) ctx.io.out(`${e.path}: ${e.ref}: ${e.reason}`);
    for (const w of r.warnings) ctx.io.err(`${strict ? 'error' : 'warning'}: ${w}`);
    const c = r.checked;
    ctx.io.err(
      `${to}: ${c.objects} objects in ${c.files} files checked against Kubernetes ${c.kubernetes.join(', ') || '(no K3s line)'} and ${c.releases.join(', ')}, changes against ${c.against}: ${r.errors.length} problem(s), ${r.warnings.length} warning(s)${failed ? '' : ' — OK'}`,
    );
  }
  return failed ? 1 : 0;
}
