import path from 'node:path';
import { promises as fs } from 'node:fs';
import { command } from '../command.ts';
import { InventoryError, UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { replaceInInventory } from '../../lifecycle/replace.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { rebuildAll } from './rebuild.ts';

export const replace = command('replace', 'give a revoked device slot a fresh identity and build its artifacts', {
  usage: 'replace ID --serial S [--mac M] [--id NEW_ID] [--no-build]',
  positionals: { min: 1, max: 1, names: 'ID (the revoked device whose slot is refilled)' },
  description: `The new board takes the slot of ID (site, role, profile, network): it gets a new id (ID-r2 unless --id),
so new keys, a new instance-id and a new GitOps path. The inventory records "status: replaced, replacedBy" on the old
entry (comments and layout kept), then the whole fleet is built into --out again (SOURCE_DATE_EPOCH defaults to the
previous build's, so unchanged devices keep their bytes): the signed manifest lists every active device. Without --mac the old MAC is
kept (a moved NIC or carrier board).`,
  options: {
    serial: { type: 'string', value: 'S', description: "the new board's serial" },
    mac: { type: 'string', value: 'M', description: "the new board's MAC" },
    id: { type: 'string', value: 'NEW_ID', description: 'id for the replacement (default: ID-r2, ID-r3, …)' },
    'no-build': { type: 'boolean', description: 'only update the inventory' },
  },
  examples: ['edgeforge replace ulsan1-line1-002 --serial 10000000a3f1c099 --mac dc:a6:32:10:01:99'],
  async run(ctx) {
    const id = ctx.positionals[0];
    const serial = ctx.options.serial as string | undefined;
    if (!serial) throw new UsageError('--serial is required: the replacement board has its own serial');
    await loadFleet(ctx); // the starting point must be valid
    const file = path.resolve(ctx.io.cwd, ctx.common.inventory);
    const text = await fs.readFile(file, 'utf8');
    let result;
    try {
      result = replaceInInventory(text, ctx.common.inventory, { id, serial, mac: ctx.options.mac as string | undefined, newId: ctx.options.id as string | undefined });
    } catch (err) {
      if (err instanceof InventoryError) {
        ctx.io.err(err.format().replaceAll(`${ctx.common.inventory}:`, `${ctx.common.inventory} (after replace):`));
        throw new UserError(`the replacement would make the inventory invalid; nothing was written`);
      }
      throw new UserError((err as Error).message);
    }
    await writeFileAtomic(file, result.text, { mode: (await fs.stat(file)).mode & 0o777 });
    ctx.io.err(`${ctx.common.inventory}: ${id} → replaced by ${result.newId} (serial ${serial}${result.reusedMac ? ', MAC kept from the old board' : ''})`);
    if (ctx.options['no-build']) {
      if (ctx.common.json) ctx.io.out(JSON.stringify({ replaced: id, by: result.newId, built: false }));
      return 0;
    }
    // the whole build again: the signed manifest then lists every active device, the new one included
    return rebuildAll(ctx);
  },
});
