import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { planInputs } from '../../pipeline/inputs/plan-inputs.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../render/plan/plan.ts';
import { renderPlanAppendix } from '../../render/plan/appendix.ts';
import { UsageError } from '../../util/errors.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const plan = command('plan', 'the fleet architecture report: summary, diagrams, specs, K3s per profile, GitOps, central load, offline, theft', {
  usage: 'plan [--format md|json] [--appendix FILE] [--gitops DIR]',
  options: {
    format: { type: 'string', value: 'md|json', default: 'md', description: 'Markdown for people, JSON for tools (every site and device)' },
    appendix: { type: 'string', value: 'FILE', description: 'also write the per-site and per-device detail (Markdown) to FILE' },
    gitops: { type: 'string', value: 'DIR', description: 'the GitOps tree to measure with git for the central load (default: OUT/gitops when a build wrote it)' },
  },
  examples: ['edgeforge plan -i inventory/example.yaml > fleet-plan.md', 'edgeforge plan -i inventory/acme.yaml --appendix fleet-plan-appendix.md > fleet-plan.md'],
  async run(ctx) {
    const format = ctx.common.json ? 'json' : (ctx.options.format as string);
    if (format !== 'md' && format !== 'json') throw new UsageError(`--format must be md or json, not "${format}"`);
    const appendix = ctx.options.appendix as string | undefined;
    if (appendix !== undefined && !appendix) throw new UsageError('--appendix needs a file name');
    const fleet = await loadFleet(ctx);
    // what the plan reads besides the inventory: the Flux bundle's registries, the GitOps tree (measured), archive sizes
    const inp = await planInputs(fleet, { inventory: ctx.common.inventory, cwd: ctx.io.cwd, gitops: ctx.options.gitops as string | undefined, out: ctx.common.out });
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
