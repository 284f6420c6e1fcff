// The disk-encryption stage as the build uses it (scripts/render/encryption): per device, the encrypted
// data volume program and units in the bundle, and the one-time secrets sealed to the site's tang server
// when its advertisement is saved (tang[].advertisement). Deterministic: the sealing seed is derived from the
// secrets themselves (high-entropy, known only to the build), so rebuilds give the same bytes.
import { createHash } from 'node:crypto';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { EncryptionStage } from '../render/device.ts';
import { encryptionPlan } from '../render/encryption/plan.ts';
import { encryptionBundleFiles } from '../render/encryption/compose.ts';
import { loadAdvertisements } from '../render/encryption/load.ts';
import { UserError } from '../util/errors.ts';

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
    return encryptionBundleFiles(d, encryptionPlan(d, advertisements), { secrets: secretFiles, sourceDateEpoch, sealSeed: h.digest() });
  };
  const digest = createHash('sha256');
  for (const k of Object.keys(advertisements).sort()) digest.update(`${k}\0${advertisements[k].length}\0${advertisements[k]}`);
  return Object.assign(stage, { inputsSha256: digest.digest('hex') });
}
