// inventory generate — a synthetic fleet of N devices (benchmarks, trials), refused if it would not validate.
import path from 'node:path';
import { command } from '../command.ts';
import { UsageError } from '../../util/errors.ts';
import { generateInventory } from '../../inventory/generate.ts';
import { loadInventoryBytes } from '../../inventory/load.ts';
import { writeFileAtomic } from '../../util/atomic.ts';

export const inventoryGenerate = command('inventory generate', 'write a valid synthetic inventory of N devices (scale tests, demos)', {
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
});
