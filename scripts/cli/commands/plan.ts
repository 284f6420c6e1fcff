import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { fluxBundleImages } from '../../pipeline/inputs/flux-bundle.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../render/plan/plan.ts';
import { UsageError } from '../../util/errors.ts';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { TarFile } from '../../render/oci/tar.ts';

/** Every file under dir (relative paths), or undefined when there is no such directory. */
async function readTree(dir: string): Promise<TarFile[] | undefined> {
  const names = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => undefined);
  if (!names) return undefined;
  const files: TarFile[] = [];
  for (const e of names) {
    if (!e.isFile()) continue;
    const abs = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const rel = path.relative(dir, abs).split(path.sep).join('/');
    if (rel.startsWith('.git/') || rel === '.edgeforge-inputs') continue;
    files.push({ path: rel, bytes: await fs.readFile(abs) });
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

export const plan = command('plan', 'the fleet architecture report: specs, K3s per profile, install, GitOps layout, offline, theft', {
  usage: 'plan [--format md|json]',
  options: { format: { type: 'string', value: 'md|json', default: 'md', description: 'Markdown for people, JSON for tools' } },
  examples: ['edgeforge plan -i inventory/example.yaml > fleet-plan.md'],
  async run(ctx) {
    const format = ctx.common.json ? 'json' : (ctx.options.format as string);
    if (format !== 'md' && format !== 'json') throw new UsageError(`--format must be md or json, not "${format}"`);
    const fleet = await loadFleet(ctx);
    // the one thing the plan reads besides the inventory: which registries the pinned Flux bundle pulls from
    // and the GitOps tree the last build wrote (OUT/gitops), for the central load of both transports
    const inp = { fluxImages: await fluxBundleImages(fleet, ctx.common.inventory, ctx.io.cwd), tree: await readTree(path.resolve(ctx.io.cwd, ctx.common.out, 'gitops')) };
    ctx.io.out(format === 'json' ? renderPlanJson(fleet, inp) : renderPlanMarkdown(fleet, inp));
    return 0;
  },
});
