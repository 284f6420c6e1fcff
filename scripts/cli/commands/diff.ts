import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { inventoryAtRevision } from '../../pipeline/inputs/revision.ts';
import { diffFleets, type ChangeKind } from '../../pipeline/select/changes.ts';

const ORDER: ChangeKind[] = ['added', 'removed', 'revoked', 'reinstated', 're-rendered'];

export const diff = command('diff', 'show per device what an inventory change would do: added, removed, re-rendered, revoked', {
  usage: 'diff REV [-i INVENTORY]',
  positionals: { min: 1, max: 1, names: 'REV (a git revision, e.g. origin/main)' },
  description: 'Compares the inventory at REV (read with git) with the working copy. What an operator reviews in a pull request to the inventory.',
  options: { all: { type: 'boolean', description: 'also list unchanged devices' } },
  examples: ['edgeforge diff origin/main -i inventory/example.yaml'],
  async run(ctx) {
    const rev = ctx.positionals[0];
    const after = await loadFleet(ctx);
    const { fleet: before } = await inventoryAtRevision(ctx.common.inventory, rev);
    const changes = diffFleets(before, after);
    const shown = ctx.options.all ? changes : changes.filter((c) => c.kind !== 'unchanged');
    if (ctx.common.json) {
      ctx.io.out(JSON.stringify({ rev, devices: shown.map((c) => ({ id: c.id, change: c.kind, site: c.site, fields: c.fields })) }, null, 2));
      return 0;
    }
    const counts = ORDER.map((k) => `${changes.filter((c) => c.kind === k).length} ${k}`).join(', ');
    const lines = [`${ctx.common.inventory}: ${rev} → working copy: ${counts}, ${changes.filter((c) => c.kind === 'unchanged').length} unchanged`];
    for (const k of [...ORDER, 'unchanged' as const]) {
      const group = shown.filter((c) => c.kind === k);
      if (!group.length) continue;
      lines.push('', `${k}:`);
      for (const c of group)
        lines.push(
          `  ${k === 'added' ? '+' : k === 'removed' || k === 'revoked' ? '-' : '~'} ${c.id.padEnd(28)} ${c.site}${c.fields.length && k === 're-rendered' ? `  (${c.fields.join(', ')})` : ''}`,
        );
    }
    ctx.io.out(lines.join('\n'));
    return 0;
  },
});
