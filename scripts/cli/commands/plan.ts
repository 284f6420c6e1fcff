import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { fluxBundleImages } from '../../pipeline/inputs/flux-bundle.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../render/plan/plan.ts';
import { UsageError } from '../../util/errors.ts';
import { fleetExpiries } from '../../pipeline/inputs/expiries.ts';
import path from 'node:path';

export const plan = command('plan', 'the fleet architecture report: specs, K3s per profile, install, GitOps layout, offline, theft', {
  usage: 'plan [--format md|json]',
  options: { format: { type: 'string', value: 'md|json', default: 'md', description: 'Markdown for people, JSON for tools' } },
  examples: ['edgeforge plan -i inventory/example.yaml > fleet-plan.md'],
  async run(ctx) {
    const format = ctx.common.json ? 'json' : (ctx.options.format as string);
    if (format !== 'md' && format !== 'json') throw new UsageError(`--format must be md or json, not "${format}"`);
    const fleet = await loadFleet(ctx);
    // what the plan reads besides the inventory: which registries the pinned Flux bundle pulls from, what expires
    const inp = { fluxImages: await fluxBundleImages(fleet, ctx.common.inventory, ctx.io.cwd), expiries: await fleetExpiries(fleet, path.resolve(ctx.io.cwd, ctx.common.inventory)) };
    ctx.io.out(format === 'json' ? renderPlanJson(fleet, inp) : renderPlanMarkdown(fleet, inp));
    return 0;
  },
});
