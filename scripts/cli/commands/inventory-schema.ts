// inventory schema — the inventory's JSON Schema for editors.
import path from 'node:path';
import { command } from '../command.ts';
import { inventoryJsonSchema } from '../../inventory/schema.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const inventorySchema = command('inventory schema', 'print (or --write) the inventory JSON Schema for editors', {
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
});
