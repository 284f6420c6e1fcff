// Loading an inventory: parse (positions kept) → schema → cascade + fleet-wide checks.
// Pure on bytes; `loadInventoryFile` is the only part that touches the disk.
import { promises as fs } from 'node:fs';
import { sha256Hex } from '../util/hash.ts';
import { parseInventory } from './parse.ts';
import { validateSchema } from './validate.ts';
import { resolveFleet, normalizeMac } from './resolve.ts';
import { type Locator, type PathKey } from './problems.ts';
import type { Fleet } from './fleet.ts';
import { InventoryError, type Problem } from '../util/errors.ts';

export function loadInventoryBytes(bytes: Uint8Array, file: string): Fleet {
  const parsed = parseInventory(bytes);
  if (!parsed.ok) throw new InventoryError(file, parsed.problems);
  const { data, locator } = parsed.parsed;
  const { inventory, problems } = validateSchema(data, locator);
  if (!inventory) {
    // the schema failed somewhere; still report fleet-wide duplicates so one run shows everything
    throw new InventoryError(file, [...problems, ...rawDuplicates(data, locator)]);
  }
  const r = resolveFleet(inventory, locator, { file, sha256: sha256Hex(bytes) });
  if (!r.fleet) throw new InventoryError(file, r.problems);
  return r.fleet;
}

/** `file` is read; `shown` is how errors name it (the path as the user typed it). */
export async function loadInventoryFile(file: string, shown = file): Promise<Fleet> {
  try {
    return await readAndLoad(file, shown);
  } catch (err) {
    if (err instanceof InventoryError && err.file !== shown) throw new InventoryError(shown, err.problems);
    throw err;
  }
}

async function readAndLoad(file: string, shown: string): Promise<Fleet> {
  let bytes: Buffer;
  try {
    const st = await fs.stat(file);
    if (st.isDirectory()) throw new InventoryError(file, [{ line: 1, col: 1, message: 'is a directory; name the inventory file' }]);
    if (!st.isFile()) {
      // a pipe (`-i /dev/stdin`): read it in chunks, refusing more than the limit
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const c of (await import('node:fs')).createReadStream(file)) {
        total += (c as Buffer).length;
        if (total > 32 * 1024 * 1024) return loadInventoryBytes(Buffer.alloc(32 * 1024 * 1024 + 1), shown);
        chunks.push(c as Buffer);
      }
      return loadInventoryBytes(Buffer.concat(chunks), shown);
    }
    // read at most one byte past the limit: a huge file is refused without loading it whole
    const fh = await fs.open(file, 'r');
    try {
      const cap = 32 * 1024 * 1024 + 1;
      const buf = Buffer.alloc(Math.min(st.size, cap));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      bytes = st.size > cap - 1 ? Buffer.alloc(cap) : buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof InventoryError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file (use -i FILE, or create one with `edgeforge inventory generate`)' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new InventoryError(file, [{ line: 1, col: 1, message: why }]);
  }
  return loadInventoryBytes(bytes, shown);
}

function rawDuplicates(data: unknown, loc: Locator): Problem[] {
  const out: Problem[] = [];
  const seen = new Map<string, PathKey[]>();
  const regions = (data as { regions?: unknown }).regions;
  if (!regions || typeof regions !== 'object') return out;
  for (const [r, region] of Object.entries(regions as Record<string, unknown>)) {
    const sites = (region as { sites?: unknown })?.sites;
    if (!sites || typeof sites !== 'object') continue;
    for (const [s, site] of Object.entries(sites as Record<string, unknown>)) {
      const devices = (site as { devices?: unknown })?.devices;
      if (!Array.isArray(devices)) continue;
      devices.forEach((d, i) => {
        if (!d || typeof d !== 'object') return;
        // same rule as resolve.ts: MACs are unique among active devices only
        const active = (d as { status?: unknown }).status === undefined || (d as { status?: unknown }).status === 'active';
        for (const field of (active ? ['id', 'serial', 'mac'] : ['id', 'serial']) as ('id' | 'serial' | 'mac')[]) {
          let v = (d as Record<string, unknown>)[field];
          if (typeof v !== 'string') continue;
          if (field === 'mac') v = normalizeMac(v);
          const key = `${field}\0${v}`;
          const path: PathKey[] = ['regions', r, 'sites', s, 'devices', i, field];
          const prev = seen.get(key);
          const label = field === 'id' ? 'device id' : field === 'mac' ? 'MAC' : 'serial';
          if (prev) out.push(loc.problem(path, `${label} ${JSON.stringify(v)} is already used at line ${loc.pos(prev).line}; ${label}s must be unique across the fleet`));
          else seen.set(key, path);
        }
      });
    }
  }
  return out;
}
