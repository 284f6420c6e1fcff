import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { fluxBundleImages } from '../../pipeline/inputs/flux-bundle.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../render/plan/plan.ts';
import { renderPlanAppendix } from '../../render/plan/appendix.ts';
import { UsageError } from '../../util/errors.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const plan = command('plan', 'the fleet architecture report: summary, diagrams, specs, K3s per profile, GitOps, central load, offline, theft', {
  usage: 'plan [--format md|json] [--appendix FILE]',
  options: {
    format: { type: 'string', value: 'md|json', default: 'md', description: 'Markdown for people, JSON for tools (every site and device)' },
    appendix: { type: 'string', value: 'FILE', description: 'also write the per-site and per-device detail (Markdown) to FILE' },
  },
  examples: ['edgeforge plan -i inventory/example.yaml > fleet-plan.md', 'edgeforge plan -i inventory/acme.yaml --appendix fleet-plan-appendix.md > fleet-plan.md'],
  async run(ctx) {
    const format = ctx.common.json ? 'json' : (ctx.options.format as string);
    if (format !== 'md' && format !== 'json') throw new UsageError(`--format must be md or json, not "${format}"`);
    const appendix = ctx.options.appendix as string | undefined;
    if (appendix !== undefined && !appendix) throw new UsageError('--appendix needs a file name');
    const fleet = await loadFleet(ctx);
    // the one thing the plan reads besides the inventory: which registries the pinned Flux bundle pulls from
    const inp = { fluxImages: await fluxBundleImages(fleet, ctx.common.inventory, ctx.io.cwd) };
    const doc = format === 'json' ? renderPlanJson(fleet, inp) : renderPlanMarkdown(fleet, inp);
    if (appendix) {
      try {
        await writeFileAtomic(path.resolve(ctx.io.cwd, appendix), renderPlanAppendix(fleet, inp));
      } catch (e) {
        throw new UsageError(`--appendix ${appendix}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'its directory does not exist' : (e as Error).message}`);
      }
      ctx.io.err(`plan: the appendix (every site and device) is in ${appendix}`);
    }
    ctx.io.out(doc);
    return 0;
  },
});
