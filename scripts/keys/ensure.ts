// Load many identities at once, generating the missing ones under the keys lock (a build's first step).
import pLimit from 'p-limit';
import { sweepTempFiles } from '../util/atomic.ts';
import { checkDeviceId, checkSiteId } from './layout.ts';
import { withKeysLock } from './lock.ts';
import { readRecord } from './records.ts';
import { generateIdentity, loadIdentity, type StoreContext } from './identity.ts';
import type { DeviceIdentity, EnsureResult, EntityKind, Progress, SiteIdentity } from './types.ts';

/** Load each identity, generating (and storing, encrypted) the ones that do not exist yet; keeps the caller's order. */
export async function ensureIdentities<T extends DeviceIdentity | SiteIdentity>(ctx: StoreContext, kind: EntityKind, ids: string[], p: Progress): Promise<EnsureResult<T>> {
  const unique = [...new Set(ids)];
  for (const id of unique) (kind === 'device' ? checkDeviceId : checkSiteId)(id);
  const identities = new Map<string, T>();
  const created: string[] = [];
  const limit = pLimit(16);
  let done = 0;
  const tick = () => p.onProgress?.(++done, unique.length);
  const records = await Promise.all(unique.map((id) => limit(() => readRecord(ctx.layout, kind, id))));
  const missing = unique.filter((_, i) => !records[i]);
  if (missing.length > 0) ctx.admins.recipientsOrThrow();
  if (unique.length > missing.length) await ctx.admins.unlock(); // fail fast, before generating anything
  const loadExisting = unique
    .map((id, i) => [id, records[i]] as const)
    .filter(([, r]) => r)
    .map(([id, rec]) =>
      limit(async () => {
        identities.set(id, (await loadIdentity(ctx, kind, id, rec!, rec!.generation)) as T);
        tick();
      }),
    );
  const generateMissing = async () => {
    if (missing.length === 0) return;
    await withKeysLock(ctx.dir, async () => {
      await sweepTempFiles(ctx.dir); // temp files of a killed run (only lock holders write, so none are live)
      await Promise.all(
        missing.map((id) =>
          limit(async () => {
            const again = await readRecord(ctx.layout, kind, id); // another run may have made it meanwhile
            const ident = again ? await loadIdentity(ctx, kind, id, again, again.generation) : await generateIdentity(ctx, kind, id, 1, []);
            if (!again) created.push(id);
            identities.set(id, ident as T);
            tick();
          }),
        ),
      );
    });
  };
  await Promise.all([...loadExisting, generateMissing()]);
  // keep the caller's order
  const ordered = new Map<string, T>();
  for (const id of unique) ordered.set(id, identities.get(id)!);
  created.sort((a, b) => unique.indexOf(a) - unique.indexOf(b));
  return { identities: ordered, created };
}
