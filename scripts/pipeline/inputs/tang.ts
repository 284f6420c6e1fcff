// Thin I/O: read the saved tang advertisements the inventory names (tang[].advertisement, a path relative
// to the inventory file), once per file, for encryptionPlan(). Missing files are an error that says how to
// make one; a device whose servers have no `advertisement` binds online at first boot instead.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedDevice } from '../../inventory/fleet.ts';

/** url -> advertisement text, for the tang servers of `devices` that name a saved advertisement. */
export async function loadAdvertisements(inventoryFile: string, devices: ResolvedDevice[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const byFile = new Map<string, Promise<string>>();
  for (const d of devices) {
    for (const t of d.encryption.tang) {
      if (!t.advertisement || out[t.url] !== undefined) continue;
      const file = path.resolve(path.dirname(inventoryFile), t.advertisement);
      let p = byFile.get(file);
      if (!p) {
        p = readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
          throw new Error(
            `${d.id}: cannot read the tang advertisement ${t.advertisement} (${file}): ${e.code ?? e.message}. Save it on a trusted network with: curl -sf ${t.url}/adv > ${t.advertisement}`,
          );
        });
        byFile.set(file, p);
      }
      out[t.url] = await p;
    }
  }
  return out;
}
