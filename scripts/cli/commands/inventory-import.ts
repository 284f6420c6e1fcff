// inventory import — devices from a spreadsheet (CSV) into the inventory, keeping its comments.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { command } from '../command.ts';
import { UserError } from '../../util/errors.ts';
import { importCsv } from '../../inventory/import-csv.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const inventoryImport = command('inventory import', 'add devices from a spreadsheet (CSV) to the inventory, keeping its comments', {
  usage: 'inventory import FILE.csv [-i INVENTORY] [--allow-new-sites] [--dry-run]',
  common: ['inventory', 'json'],
  positionals: { min: 1, max: 1, names: 'FILE.csv' },
  description: `The first row names the columns: id, serial, mac, region, site (required), profile, role, address, ssh_host, notes.
Comma or semicolon separated. Regions and sites must already be in the inventory (a typo would create a site with
no network settings) unless --allow-new-sites. The result is validated before anything is written; every problem
is reported as FILE.csv:ROW:COL.`,
  options: {
    'dry-run': { type: 'boolean', description: 'print the resulting inventory instead of writing it' },
    'allow-new-sites': { type: 'boolean', description: 'create regions and sites the inventory does not have yet' },
  },
  examples: ['edgeforge inventory import line3-devices.csv -i inventory/acme.yaml', 'edgeforge inventory import new-store.csv --allow-new-sites --dry-run'],
  async run(ctx) {
    const csvFile = ctx.positionals[0];
    let csvText: string;
    try {
      csvText = await fs.readFile(path.resolve(ctx.io.cwd, csvFile), 'utf8');
    } catch (err) {
      throw new UserError(`cannot read ${csvFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const invPath = path.resolve(ctx.io.cwd, ctx.common.inventory);
    const invText = await fs.readFile(invPath, 'utf8');
    const { text: next, devices } = importCsv(csvText, csvFile, invText, ctx.common.inventory, { allowNewSites: !!ctx.options['allow-new-sites'] });
    if (ctx.options['dry-run']) ctx.io.out(next);
    else await writeFileAtomic(invPath, next);
    if (ctx.common.json) ctx.io.out(JSON.stringify({ imported: devices.length, inventory: ctx.common.inventory, written: !ctx.options['dry-run'] }));
    else ctx.io.err(`${ctx.options['dry-run'] ? 'would add' : 'added'} ${devices.length} device(s) from ${csvFile} to ${ctx.common.inventory}`);
    return 0;
  },
});
