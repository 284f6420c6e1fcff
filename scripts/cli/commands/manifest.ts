import path from 'node:path';
import { command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { mergeShards } from '../../lifecycle/merge.ts';
import { openKeyStore } from '../../keys/store.ts';

export const manifestMerge = command('manifest merge', 'join shard builds into one output with one signed manifest', {
  usage: 'manifest merge SHARD_DIR... -o OUT [-i INVENTORY] [--keys DIR]',
  positionals: { min: 1, max: 1000, names: 'SHARD_DIR... (outputs of build --shard K/N)' },
  description: `Verifies every shard (manifest signature against the build key pinned in --keys, every artifact's hash),
checks they were built from the same inventory, keys and SOURCE_DATE_EPOCH and that together they cover every
active device, copies their files into OUT, and writes one manifest.json signed by the build key. For the same
inputs the result is byte-identical to an unsharded build.`,
  examples: ['edgeforge manifest merge shards/1 shards/2 shards/3 shards/4 -o images/out'],
  async run(ctx) {
    if (ctx.positionals.length < 1) throw new UsageError('name at least one shard directory');
    const fleet = await loadFleet(ctx);
    const keysDir = path.resolve(ctx.io.cwd, ctx.common.keys);
    const ks = await openKeyStore({ dir: keysDir });
    try {
      const r = await mergeShards({
        shards: ctx.positionals.map((p) => path.resolve(ctx.io.cwd, p)),
        outDir: path.resolve(ctx.io.cwd, ctx.common.out),
        keysDir,
        fleet,
        sign: async (bytes, epoch) => ({
          signature: await ks.signDetached(bytes, { sourceDateEpoch: epoch }),
          publicKey: await ks.buildPublicKeyArmored(),
          fingerprint: await ks.buildKeyFingerprint(),
        }),
      });
      if (r.problems.length) {
        ctx.io.err(r.problems.map((p) => `  ${p}`).join('\n'));
        throw new UserError(`cannot merge ${ctx.positionals.length} shard(s): ${r.problems.length} problem(s); nothing was written to ${ctx.common.out}/manifest.json`);
      }
      if (ctx.common.json) ctx.io.out(JSON.stringify({ manifest: path.join(ctx.common.out, 'manifest.json'), devices: r.manifest.devices.length, signedBy: r.fingerprint }));
      else ctx.io.err(`merged ${ctx.positionals.length} shard(s): ${path.join(ctx.common.out, 'manifest.json')} lists ${r.manifest.devices.length} device(s), signed by ${r.fingerprint}`);
      return 0;
    } finally {
      await ks.close();
    }
  },
});
