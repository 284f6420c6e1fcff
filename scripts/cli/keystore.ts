// What the key commands share: the keystore opened and closed around one command, the inventory when there is one, progress lines.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { type RunContext } from './command.ts';
import { keysErrors } from './keys-errors.ts';
import { loadFleet } from '../pipeline/inputs/fleet.ts';
import { openKeyStore, type KeyStore } from '../keys/store.ts';
import type { Fleet } from '../inventory/fleet.ts';

export const keysDir = (ctx: RunContext) => path.resolve(ctx.io.cwd, ctx.common.keys);

/** Open the keystore for one command (KeysError → exit 2, as keysErrors), and close it whatever happens. */
export async function withKeyStore<T>(ctx: RunContext, opts: { workers?: number }, fn: (ks: KeyStore) => Promise<T>): Promise<T> {
  return keysErrors(async () => {
    const ks = await openKeyStore({ dir: keysDir(ctx), ...opts });
    try {
      return await fn(ks);
    } finally {
      await ks.close();
    }
  });
}

/** The inventory when there is one; a missing default inventory is fine for key commands, an invalid one is not. */
export async function maybeFleet(ctx: RunContext): Promise<Fleet | undefined> {
  try {
    await fs.access(path.resolve(ctx.io.cwd, ctx.common.inventory));
  } catch {
    return undefined;
  }
  return loadFleet(ctx);
}

export function progress(ctx: RunContext, what: string) {
  let last = 0;
  return (done: number, total: number) => {
    if (ctx.common.json) return;
    const now = Date.now();
    if (done === total || now - last > 1000) {
      last = now;
      ctx.io.err(`${what}: ${done}/${total}`);
    }
  };
}
