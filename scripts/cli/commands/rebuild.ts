// After `revoke` or `replace` changed the inventory: the whole build in OUT again, so the signed manifest lists
// every active device (and only those) and `verify OUT` passes. A `--only NEW_ID` build would sign a manifest
// of the new device alone while the other device directories stay behind unlisted.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { parseCommand, type RunContext } from '../command.ts';
import { buildCommand } from './build.ts';

/** True when OUT holds a build (its manifest.json). */
export async function hasBuild(ctx: RunContext): Promise<boolean> {
  return fs.access(path.join(path.resolve(ctx.io.cwd, ctx.common.out), 'manifest.json')).then(
    () => true,
    () => false,
  );
}

/**
 * A full `edgeforge build` into OUT with this command's inventory and keys. SOURCE_DATE_EPOCH, when unset, is the
 * previous manifest's, so the devices that did not change keep their bytes. With `quiet`, the build's own output
 * goes to stderr (the caller prints its own result).
 */
export async function rebuildAll(ctx: RunContext, opts: { quiet?: boolean } = {}): Promise<number> {
  const out = path.resolve(ctx.io.cwd, ctx.common.out);
  const env = { ...ctx.io.env };
  if (!env.SOURCE_DATE_EPOCH) {
    const prev = await fs.readFile(path.join(out, 'manifest.json'), 'utf8').then(
      (t) => JSON.parse(t) as { sourceDateEpoch?: number },
      () => undefined,
    );
    if (prev?.sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(prev.sourceDateEpoch);
  }
  const argv = ['-i', ctx.common.inventory, '-o', ctx.common.out, '--keys', ctx.common.keys];
  if (ctx.common.json) argv.push('--json');
  const io = { ...ctx.io, env, out: opts.quiet ? ctx.io.err : ctx.io.out };
  return buildCommand.run!(parseCommand(buildCommand, argv, io));
}
