// The disk-encryption stage as the build uses it (scripts/render/encryption/encryption-stage.ts), with the tang
// advertisements saved beside the inventory (tang[].advertisement) that it seals the one-time secrets to.
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { DeviceStage } from '../render/device-stage.ts';
import { encryptionStage } from '../render/encryption/encryption-stage.ts';
import { loadAdvertisements } from './inputs/tang.ts';
import { UserError } from '../util/errors.ts';

/** The stage, sealing to the advertisements saved beside the inventory (read once here). */
export async function prepareEncryption(fleet: Fleet, inventoryPath: string, devices: ResolvedDevice[], sourceDateEpoch: number): Promise<DeviceStage> {
  let advertisements: Record<string, string>;
  try {
    advertisements = await loadAdvertisements(
      inventoryPath,
      devices.filter((d) => d.encryption.mode !== 'none'),
    );
  } catch (err) {
    throw new UserError(`${(err as Error).message}. Nothing was written.`);
  }
  return encryptionStage(fleet, advertisements, sourceDateEpoch);
}

/**
 * A tang site without a saved advertisement cannot have its devices' one-time secrets sealed offline: one
 * warning per site, with the fix (the threat model's plaintext window, not a silent default). `only`: the
 * devices this build covers (all active ones when absent).
 */
export function unsealedWarnings(fleet: Fleet, only?: string[]): string[] {
  const unsealed = new Map<string, { n: number; urls: Set<string> }>();
  const selected = only?.length ? new Set(only) : undefined;
  for (const d of fleet.active) {
    if (selected && !selected.has(d.id)) continue;
    const missing = d.encryption.mode.includes('tang') ? d.encryption.tang.filter((t) => !t.advertisement) : [];
    if (!missing.length || missing.length < d.encryption.tang.length) continue; // one saved advertisement is enough
    const k = `${d.region}/${d.site}`;
    const e = unsealed.get(k) ?? { n: 0, urls: new Set<string>() };
    e.n++;
    for (const t of missing) e.urls.add(t.url);
    unsealed.set(k, e);
  }
  return [...unsealed].map(
    ([site, e]) =>
      `warning: site ${site} (${e.n} device(s)): one-time secrets travel unsealed in user-data until first boot (no saved tang advertisement); to seal them: curl -sf ${[...e.urls][0]}/adv > FILE and set tang[].advertisement: FILE (docs/disk-encryption.md)`,
  );
}
