// The day-2 device stages: the K3s certificate-renewal check (every device) and the OS updater (devices with
// OS updates). The updater's day-2 hook installs the renewal check too, so an A/B device gets its fragment
// instead of the renewal one.
import type { DeviceStage } from '../device-stage.ts';
import { renewalBundleFiles, renewalFirstbootFragment } from './renewal.ts';
import { osBundleFiles, osDay2Fragment } from '../os/compose.ts';
import { isAbDevice } from '../../inventory/os.ts';
import { sha256Hex } from '../../util/hash.ts';

/** Built into renderDevice: reads nothing but the inventory. */
export const renewalStage: DeviceStage = {
  inputs: {},
  render(d, { fleet }) {
    const site = fleet.sites.find((x) => x.id === d.siteId);
    return { files: site ? renewalBundleFiles(d, site) : [], ...(isAbDevice(fleet, d) ? {} : { fragment: renewalFirstbootFragment() }) };
  },
};

/** OS updates (inventory os:, docs/os-updates.md): the updater, its health check and RAUC's keyring, the fleet's OS-update certificate. */
export function osStage(certPem: string): DeviceStage {
  return {
    inputs: { certificate: sha256Hex(Buffer.from(certPem, 'utf8')) },
    render(d, { fleet }) {
      if (!isAbDevice(fleet, d)) return { files: [] };
      const site = fleet.sites.find((x) => x.id === d.siteId);
      return { files: site ? osBundleFiles(d, fleet, site, certPem) : [], fragment: osDay2Fragment() };
    },
  };
}
