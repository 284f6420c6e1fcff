// The disk-encryption stage as the build uses it (scripts/render/encryption): per device, the encrypted
// data volume program and units in the bundle, and the one-time secrets sealed to the site's tang server
// when its advertisement is saved (tang[].advertisement). Deterministic: the sealing seed is derived from the
// secrets themselves (high-entropy, known only to the build), so rebuilds give the same bytes.
import { createHash } from 'node:crypto';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { EncryptionStage } from '../render/device.ts';
import { encryptionPlan } from '../render/encryption/plan.ts';
import { encryptionBundleFiles } from '../render/encryption/compose.ts';
import { loadAdvertisements } from './inputs/tang.ts';
import { UserError } from '../util/errors.ts';
import { isAbDevice } from '../inventory/os.ts';
import { piDataPartition } from '../render/os/slots.ts';

/** The stage, and `inputsSha256`: a digest of the saved advertisements it seals to (the build's inputs hash). */
export async function prepareEncryption(fleet: Fleet, inventoryPath: string, devices: ResolvedDevice[], sourceDateEpoch: number): Promise<EncryptionStage & { inputsSha256: string }> {
  let advertisements: Record<string, string>;
  try {
    advertisements = await loadAdvertisements(inventoryPath, devices.filter((d) => d.encryption.mode !== 'none'));
  } catch (err) {
    throw new UserError(`${(err as Error).message}. Nothing was written.`);
  }
  const stage: EncryptionStage = (d, secretFiles) => {
    const h = createHash('sha256').update(`edgeforge-seal-seed/1\0${fleet.name}\0${d.id}\0`);
    for (const f of secretFiles) h.update(`${f.name}\0${f.bytes.length}\0`).update(f.bytes);
    const plan = encryptionPlan(d, advertisements);
    // a Raspberry Pi A/B card has no primary MBR slot left: its data partition is made with the card (render/os/slots.ts)
    if (!plan.dataPartition && isAbDevice(fleet, d) && d.profile.baseImage.layout === 'raspi-mbr') plan.dataPartition = piDataPartition(fleet.name);
    return encryptionBundleFiles(d, plan, { secrets: secretFiles, sourceDateEpoch, sealSeed: h.digest() });
  };
  const digest = createHash('sha256');
  for (const k of Object.keys(advertisements).sort()) digest.update(`${k}\0${advertisements[k].length}\0${advertisements[k]}`);
  return Object.assign(stage, { inputsSha256: digest.digest('hex') });
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
