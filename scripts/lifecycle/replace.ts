// Replacing a revoked device: its slot (site, role, profile, network) gets a new board with a fresh
// identity. The new id means new keys, a new instance-id and a new GitOps path; the old entry stays
// in the inventory as `status: replaced` with `replacedBy`, so the history reads from the file.
import { parse } from 'yaml';
import type { Fleet } from '../inventory/fleet.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { insertDeviceAfter, setDeviceFields, setScalarAt } from './inventory-edit.ts';

const NOT_COPIED = new Set(['id', 'serial', 'mac', 'status', 'revoked', 'replacedBy', 'notes']);

/** ulsan1-line1-002 → ulsan1-line1-002-r2 → ulsan1-line1-002-r3 */
export function nextReplacementId(id: string, taken: Set<string>): string {
  const m = /^(.*)-r(\d+)$/.exec(id);
  const stem = m ? m[1] : id;
  let n = m ? Number(m[2]) + 1 : 2;
  while (taken.has(`${stem}-r${n}`)) n++;
  const next = `${stem}-r${n}`;
  if (next.length > 63) throw new Error(`replacement id "${next}" is longer than 63 characters; pass --id`);
  return next;
}

function rawDevice(text: string, fleet: Fleet, id: string): Record<string, unknown> {
  const d = fleet.devices.find((x) => x.id === id)!;
  const doc = parse(text) as { regions: Record<string, { sites: Record<string, { devices: Record<string, unknown>[] }> }> };
  return doc.regions[d.region].sites[d.site].devices.find((x) => x.id === id)!;
}

export interface ReplaceInput {
  id: string;
  serial: string;
  mac?: string;
  newId?: string;
}

export function replaceInInventory(text: string, file: string, r: ReplaceInput): { text: string; newId: string; reusedMac: boolean } {
  const fleet = loadInventoryBytes(Buffer.from(text), file);
  const old = fleet.devices.find((x) => x.id === r.id);
  if (!old) throw new Error(`no device "${r.id}" in ${file}`);
  if (old.status === 'active') throw new Error(`device "${r.id}" is active; revoke it first (edgeforge revoke ${r.id} --reason stolen|lost|retired)`);
  if (old.status === 'replaced') throw new Error(`device "${r.id}" was already replaced by "${old.replacedBy}"; replace that one instead`);
  const taken = new Set(fleet.devices.map((d) => d.id));
  const newId = r.newId ?? nextReplacementId(r.id, taken);
  if (taken.has(newId)) throw new Error(`device id "${newId}" is already in the inventory`);
  const raw = rawDevice(text, fleet, r.id);
  const device: Record<string, unknown> = { id: newId, serial: r.serial, mac: r.mac ?? old.mac };
  for (const [k, v] of Object.entries(raw)) if (!NOT_COPIED.has(k)) device[k] = v;
  device.notes = `replaces ${r.id} (${old.status})`;
  let next = insertDeviceAfter(text, r.id, device);
  next = setDeviceFields(next, r.id, { status: 'replaced', replacedBy: newId });
  if (fleet.inventory.fleet.deviceCount !== undefined) next = setScalarAt(next, ['fleet', 'deviceCount'], fleet.inventory.fleet.deviceCount + 1);
  loadInventoryBytes(Buffer.from(next), file); // the result must validate (serial/MAC clashes are reported here)
  return { text: next, newId, reusedMac: !r.mac };
}
