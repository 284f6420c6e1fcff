// `keys rotate` (and revoke's site rotation): a new generation, the old one kept in history.
import { sweepTempFiles } from '../util/atomic.ts';
import { KeysError } from '../util/errors.ts';
import { checkDeviceId, checkSiteId } from './layout.ts';
import { withKeysLock } from './lock.ts';
import { entityDir, fingerprintsOf, readRecord } from './records.ts';
import { generateIdentity, type StoreContext } from './identity.ts';
import type { DeviceIdentity, EntityKind, HistoryEntry, RotationResult, SiteIdentity } from './types.ts';

/** New keys for a device or site (the old generation stays in history for recovery); says what must be redeployed. */
export async function rotateIdentity(ctx: StoreContext, kind: EntityKind, id: string, reason: string): Promise<RotationResult> {
  (kind === 'device' ? checkDeviceId : checkSiteId)(id);
  return withKeysLock(ctx.dir, async () => {
    await sweepTempFiles(entityDir(ctx.layout, kind, id));
    const rec = await readRecord(ctx.layout, kind, id);
    if (!rec) throw new KeysError(`no keys for ${kind} "${id}" in ${ctx.dir}/ to rotate (a build creates them; check the id)`);
    const old = fingerprintsOf(rec);
    const entry: HistoryEntry = { generation: rec.generation, created: rec.created, retired: new Date().toISOString(), reason, fingerprints: old };
    const next = (await generateIdentity(ctx, kind, id, rec.generation + 1, [entry, ...rec.history])) as DeviceIdentity | SiteIdentity;
    const nrec = (await readRecord(ctx.layout, kind, id))!;
    const now = fingerprintsOf(nrec);
    const changed = Object.keys(now).map((what) => ({ what, old: old[what], new: now[what] }));
    return { kind, id, fromGeneration: rec.generation, toGeneration: next.generation, changed, redeploy: redeployText(kind, id, old, now) };
  });
}

function redeployText(kind: EntityKind, id: string, old: Record<string, string>, now: Record<string, string>): string[] {
  if (kind === 'site') {
    return [
      `re-encrypt the site's SOPS files in the GitOps repo to the new site key ${now.sops} (replace ${old.sops} in .sops.yaml, then sops updatekeys)`,
      `rebuild and redeploy every device of site ${id} (edgeforge build, then flash or provision) so each carries the new site key`,
      `once all devices run the new key, the old key ${old.sops} decrypts nothing new; it stays in keys/ history only for audit`,
    ];
  }
  return [
    `rebuild device ${id} (edgeforge build --only ${id}) and redeploy it: reflash, or edgeforge provision --only ${id}`,
    `update the pinned host key of ${id} in the inventory (ssh.hostKey): ${old.sshHostKey} -> ${now.sshHostKey}`,
    `on the Git host: delete deploy key ${old.deployKey} and add the new one (${now.deployKey}) read-only`,
    `re-encrypt ${id}'s SOPS files to ${now.sops} (replace ${old.sops} in .sops.yaml, then sops updatekeys)`,
    `K3s token changed: on a running cluster run k3s token rotate, or reinstall the node`,
    `the LUKS recovery keyslot on the disk keeps the old passphrase until the device is reprovisioned; keys recover ${id} prints every generation`,
  ];
}
