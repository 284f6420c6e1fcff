// `keys rewrap`: re-encrypt every private file to the current admin recipients.
import pLimit from 'p-limit';
import { writeFileAtomic } from '../util/atomic.ts';
import { withKeysLock } from './lock.ts';
import { entityDir, exists, json, readRecord, type AnyRecord } from './records.ts';
import { listIdentities } from './list.ts';
import type { BuildKey } from './build-key.ts';
import type { StoreContext } from './identity.ts';
import { statusCredentialSecretFiles } from './status-credentials.ts';

/**
 * Re-encrypt every private file to the current admin recipients (after adding or removing an admin).
 * Removing an admin this way does not un-leak what they could already read: rotate too.
 */
export async function rewrapAll(ctx: StoreContext, build: BuildKey): Promise<{ files: number }> {
  const recipients = ctx.admins.recipientsOrThrow();
  await ctx.admins.unlock();
  return withKeysLock(ctx.dir, async () => {
    const listing = await listIdentities(ctx, build);
    const files: string[] = [];
    if (listing.build) files.push(ctx.layout.buildPrivate);
    if (await exists(ctx.layout.osPrivate)) files.push(ctx.layout.osPrivate);
    const recs: [string, AnyRecord][] = [];
    for (const s of [...listing.devices, ...listing.sites]) {
      const rec = (await readRecord(ctx.layout, s.kind, s.id))!;
      const edir = entityDir(ctx.layout, s.kind, s.id);
      for (const g of [rec.generation, ...rec.history.map((h) => h.generation)]) {
        const f = ctx.layout.privateFile(edir, g);
        if (await exists(f)) files.push(f);
      }
      recs.push([ctx.layout.publicFile(edir), rec]);
      // fleet status: the device's broker password files (scripts/keys/status-credentials.ts)
      if (s.kind === 'device') files.push(...(await statusCredentialSecretFiles(ctx.layout, s.id)));
    }
    const limit = pLimit(16);
    await Promise.all(
      files.map((f) =>
        limit(async () => {
          const text = await ctx.admins.decrypt(f);
          await writeFileAtomic(f, await ctx.pool.run('encryptText', { text, recipients }), { mode: 0o600 });
        }),
      ),
    );
    for (const [file, rec] of recs) await writeFileAtomic(file, json({ ...rec, encryptedTo: ctx.admins.fingerprints() }), { mode: 0o644 });
    return { files: files.length };
  });
}
