// `keys list`: every identity with its fingerprints and status. Reads public files only: needs no admin key.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { entityDir, exists, fingerprintsOf, readRecord, sameSet } from './records.ts';
import type { BuildKey } from './build-key.ts';
import type { StoreContext } from './identity.ts';
import type { EntityKind, IdentitySummary, KeyListing } from './types.ts';

/** Every identity with fingerprints and status. Reads public files only: needs no admin key. */
export async function listIdentities(ctx: StoreContext, buildKey: BuildKey): Promise<KeyListing> {
  const fprs = ctx.admins.fingerprints();
  const summarize = async (kind: EntityKind, id: string): Promise<IdentitySummary | undefined> => {
    const rec = await readRecord(ctx.layout, kind, id);
    if (!rec) return undefined;
    const havePriv = await exists(ctx.layout.privateFile(entityDir(ctx.layout, kind, id), rec.generation));
    const status = !havePriv ? 'private-missing' : sameSet(rec.encryptedTo, fprs) ? 'ok' : 'recipients-changed';
    return { kind, id, generation: rec.generation, created: rec.created, status, fingerprints: fingerprintsOf(rec), history: rec.history };
  };
  const deviceIds = (await fs.readdir(ctx.layout.devicesDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  const siteIds: string[] = [];
  for (const region of (await fs.readdir(ctx.layout.sitesDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort()) {
    for (const site of (await fs.readdir(path.join(ctx.layout.sitesDir, region)).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort()) siteIds.push(`${region}/${site}`);
  }
  const limit = pLimit(32);
  const devices = (await Promise.all(deviceIds.map((id) => limit(() => summarize('device', id))))).filter((x): x is IdentitySummary => !!x);
  const sites = (await Promise.all(siteIds.map((id) => limit(() => summarize('site', id))))).filter((x): x is IdentitySummary => !!x);
  let build: KeyListing['build'] = null;
  if (await exists(ctx.layout.buildPublic)) {
    build = { fingerprint: await buildKey.fingerprint(), status: (await exists(ctx.layout.buildPrivate)) ? 'ok' : 'missing' };
  }
  return { admins: ctx.admins.recipients().map(({ armored: _a, ...rest }) => rest), build, sites, devices };
}
