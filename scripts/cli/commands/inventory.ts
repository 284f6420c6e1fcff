import path from 'node:path';
import { promises as fs } from 'node:fs';
import { type Command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { generateInventory } from '../../inventory/generate.ts';
import { importCsv } from '../../inventory/import-csv.ts';
import { loadInventoryBytes } from '../../inventory/load.ts';
import { inventoryJsonSchema } from '../../inventory/schema.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const inventoryGenerate: Command = {
  name: 'inventory generate',
  summary: 'write a valid synthetic inventory of N devices (scale tests, demos)',
  usage: 'inventory generate --devices N [--output FILE]',
  common: ['json'],
  options: {
    devices: { type: 'string', value: 'N', description: 'number of devices (1 to 100000)' },
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write here instead of stdout' },
    name: { type: 'string', value: 'NAME', description: 'fleet name (default synthetic-N)' },
  },
  examples: ['edgeforge inventory generate --devices 2000 -o /tmp/fleet-2000.yaml'],
  async run(ctx) {
    const n = Number(ctx.options.devices);
    if (!ctx.options.devices || !Number.isInteger(n) || n < 1 || n > 100000) throw new UsageError('--devices must be a whole number from 1 to 100000');
    const text = generateInventory(n, { name: ctx.options.name as string | undefined });
    loadInventoryBytes(Buffer.from(text), '<generated>'); // never hand out an inventory we would refuse
    const file = ctx.options.output as string | undefined;
    if (file) {
      await writeFileAtomic(path.resolve(ctx.io.cwd, file), text);
      if (ctx.common.json) ctx.io.out(JSON.stringify({ file, devices: n }));
      else ctx.io.err(`wrote ${file}: ${n} devices`);
    } else ctx.io.out(text);
    return 0;
  },
};

export const inventoryImport: Command = {
  name: 'inventory import',
  summary: 'add devices from a spreadsheet (CSV) to the inventory, keeping its comments',
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
};

export const inventorySchema: Command = {
  name: 'inventory schema',
  summary: 'print (or --write) the inventory JSON Schema for editors',
  usage: 'inventory schema [--write]',
  common: [],
  options: { write: { type: 'boolean', description: 'write inventory/schema.json' } },
  description: 'Editors with the YAML language server validate and complete the inventory when its first line is:\n  # yaml-language-server: $schema=./schema.json',
  examples: ['edgeforge inventory schema --write'],
  async run(ctx) {
    const text = JSON.stringify(inventoryJsonSchema(), null, 2) + '\n';
    if (ctx.options.write) {
      await writeFileAtomic(path.resolve(ctx.io.cwd, 'inventory/schema.json'), text);
      ctx.io.err('wrote inventory/schema.json');
    } else ctx.io.out(text);
    return 0;
  },
};
