import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { fluxInstallProblem, gitopsSourceProblems } from '../../render/flux/index.ts';
import { k3sInstallPinProblem } from '../../render/k3s/install.ts';
import { InventoryError } from '../../util/errors.ts';

export const validate = command('validate', 'check the inventory; print every problem as FILE:LINE:COL: message', {
  description: 'Reports every problem at once (schema, unknown keys with suggestions, duplicates, networks, clusters). Writes nothing. Exit 2 when invalid.',
  examples: ['edgeforge validate -i inventory/example.yaml'],
  async run(ctx) {
    const fleet = await loadFleet(ctx);
    // GitOps source checks that need the whole fleet (mirrors name real sites, known_hosts name the right host)
    const sourceProblems = gitopsSourceProblems(fleet);
    if (sourceProblems.length) throw new InventoryError(ctx.common.inventory, sourceProblems.map((message) => ({ line: 1, col: 1, message: `gitops: ${message}` })));
    const warnings = [k3sInstallPinProblem(fleet), fluxInstallProblem(fleet)].filter((w): w is string => Boolean(w));
    for (const w of warnings) ctx.io.err(`${ctx.common.inventory}: warning: ${w}`);
    const revoked = fleet.devices.length - fleet.active.length;
    const summary = {
      valid: true,
      file: ctx.common.inventory,
      fleet: fleet.name,
      regions: fleet.regions.length,
      sites: fleet.sites.length,
      activeDevices: fleet.active.length,
      revokedDevices: revoked,
      inventorySha256: fleet.inventorySha256,
      warnings,
    };
    if (ctx.common.json) ctx.io.out(JSON.stringify(summary, null, 2));
    else
      ctx.io.out(
        `${ctx.common.inventory}: valid — fleet ${fleet.name}: ${fleet.active.length} active device(s)${revoked ? ` (+${revoked} revoked or replaced)` : ''} in ${fleet.sites.length} site(s), ${fleet.regions.length} region(s)`,
      );
    return 0;
  },
});
