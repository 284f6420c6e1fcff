// `keys recover ID`: every generation's LUKS recovery passphrase of one device.
import { DATA_VOLUME } from '../device/layout.ts';
import { KeysError } from '../util/errors.ts';
import { checkDeviceId } from './layout.ts';
import { readRecord } from './records.ts';
import { loadIdentity, type StoreContext } from './identity.ts';
import type { DeviceIdentity, RecoveryInfo } from './types.ts';

/** `keys recover ID`: the device's LUKS recovery passphrase(s), newest first. Needs the admin key. */
export async function recoverDevice(ctx: StoreContext, id: string): Promise<RecoveryInfo> {
  const rec = await readRecord(ctx.layout, 'device', checkDeviceId(id));
  if (!rec) throw new KeysError(`no keys for device "${id}" in ${ctx.dir}/ (check the id; keys list shows them)`);
  const gens = [rec.generation, ...rec.history.map((h) => h.generation)];
  const passphrases: RecoveryInfo['passphrases'] = [];
  for (const g of gens) {
    const ident = (await loadIdentity(ctx, 'device', id, rec, g)) as DeviceIdentity;
    passphrases.push({ generation: g, passphrase: ident.luksRecovery, current: g === rec.generation });
  }
  return {
    id,
    passphrases,
    // mapper name and mount point as the first-boot program sets them up (render/encryption)
    command:
      `cryptsetup open --type luks2 DATA_PARTITION ${DATA_VOLUME.name} && mount /dev/mapper/${DATA_VOLUME.name} ${DATA_VOLUME.mount}` +
      '   # type the passphrase; DATA_PARTITION: the LUKS data partition, found with: blkid -t TYPE=crypto_LUKS -o device',
  };
}
