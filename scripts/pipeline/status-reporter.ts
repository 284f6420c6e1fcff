// The fleet-status stage as the build uses it (scripts/render/status): when the inventory has `status:`,
// every device's bundle gets the reporter, its settings, the broker CA (read once here) and its own broker
// password (from the keystore, with its other secrets). Without `status:` nothing is rendered.
import type { Fleet } from '../inventory/fleet.ts';
import { sha256Hex } from '../util/hash.ts';
import type { DeviceStage } from '../render/device-stage.ts';
import { statusBundleFiles, statusFirstbootFragment } from '../render/status/compose.ts';
import { readCa } from '../fleet-status/read.ts';
import { osReporterExtension } from '../render/os/compose.ts';
import { statusReporterProgram } from '../render/status/compose.ts';
import { isAbDevice } from '../inventory/os.ts';

/** The stage; what it reads besides the inventory (the broker CA file) is its declared input. */
export async function prepareStatus(fleet: Fleet, inventoryPath: string): Promise<DeviceStage | undefined> {
  const cfg = fleet.status;
  if (!cfg) return undefined;
  const ca = await readCa(inventoryPath, cfg);
  const fragment = statusFirstbootFragment();
  // with OS updates the report also says the running slot and release, and the last rollback
  const reporter = statusReporterProgram();
  const abReporter = fleet.os ? statusReporterProgram(osReporterExtension()) : reporter;
  return {
    inputs: { brokerCa: sha256Hex(Buffer.from(ca, 'utf8')) },
    render(d, { secrets }) {
      if (!secrets.statusPassword) throw new Error(`${d.id}: fleet status is on but the device has no broker credential (keys)`);
      return { files: statusBundleFiles(d, fleet.name, cfg, ca, secrets.statusPassword, isAbDevice(fleet, d) ? abReporter : reporter), fragment };
    },
  };
}
