// What a device's rendered files depend on, hashed, so a rebuild can skip a device whose inputs are what the
// previous manifest recorded (manifest devices[].inputs). Nothing here decrypts a secret or renders a file.
//
//   device inputs = sha256 of
//     the fleet-wide inputs: the inventory without its device lists (profiles, k3s, gitops, admins, defaults,
//       regions and sites), SOURCE_DATE_EPOCH, the base image, what the render stages read from files (Flux
//       bundle, tang advertisements, airgap pins), and edgeforge's own code (every source under scripts/ and
//       package-lock.json: a changed renderer re-renders everything);
//     the device's resolved entry (select/changes.ts deviceInputs: position and notes left out);
//     its cluster peers' resolved entries (the firewall of a multi-node site names every node);
//     its identity digest (keys/digest.ts: public record + encrypted private file; its server's and site's too).
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { deviceInputs, stable } from './changes.ts';

// the sources, also when this runs compiled from dist/ (same depth: dist/pipeline/select/), so a compiled and a
// tsx run of the same code record the same inputs
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPTS = path.join(ROOT, 'scripts');

let codeDigest: Promise<string> | undefined;

/** sha256 over edgeforge's own sources (scripts/**, package-lock.json): the "render code version". */
export function codeVersion(): Promise<string> {
  codeDigest ??= (async () => {
    const files = (await fs.readdir(SCRIPTS, { recursive: true }).catch(() => [] as string[]))
      .filter((f) => /\.(ts|mts|mjs|js)$/.test(f) && !/^(bench|e2e)\//.test(f.split(path.sep).join('/')))
      .sort();
    const h = createHash('sha256');
    for (const f of files) h.update(`${f}\0`).update(await fs.readFile(path.join(SCRIPTS, f)));
    h.update(await fs.readFile(path.join(ROOT, 'package-lock.json')).catch(() => Buffer.alloc(0)));
    return h.digest('hex');
  })();
  return codeDigest;
}

export interface FleetInputs {
  sourceDateEpoch: number;
  baseImage?: unknown;
  /** what the render stages (Flux, encryption, airgap) read besides the inventory */
  render?: unknown;
  /** the airgap bundle's files and sha256 */
  airgap?: unknown;
}

/** The fleet-wide part of every device's inputs. */
export async function fleetInputsHash(fleet: Fleet, extra: FleetInputs): Promise<string> {
  const inv = fleet.inventory as unknown as Record<string, unknown> & { regions?: Record<string, { sites?: Record<string, Record<string, unknown>> }> };
  const regions: Record<string, unknown> = {};
  for (const [rname, r] of Object.entries(inv.regions ?? {})) {
    const sites: Record<string, unknown> = {};
    for (const [sname, site] of Object.entries(r.sites ?? {})) {
      const { devices: _devices, ...rest } = site;
      sites[sname] = rest;
    }
    regions[rname] = { ...r, sites };
  }
  const { regions: _r, ...top } = inv;
  return createHash('sha256')
    .update(stable({ format: 'edgeforge-inputs/1', code: await codeVersion(), inventory: { ...top, regions }, ...extra }))
    .digest('hex');
}

// multi-node peers by site, once per fleet
const peersCache = new WeakMap<Fleet, Map<string, ResolvedDevice[]>>();

function peers(fleet: Fleet, d: ResolvedDevice): ResolvedDevice[] {
  if (d.cluster.kind === 'single-node') return [];
  let bySite = peersCache.get(fleet);
  if (!bySite) {
    bySite = new Map();
    for (const x of fleet.active) if (x.cluster.kind !== 'single-node') bySite.set(x.siteId, [...(bySite.get(x.siteId) ?? []), x]);
    peersCache.set(fleet, bySite);
  }
  return bySite.get(d.siteId) ?? [];
}

/** undefined when the identity digest is unknown (no keys yet): such a device is always rendered. */
export function deviceInputsHash(fleetHash: string, fleet: Fleet, d: ResolvedDevice, identity: string | undefined): string | undefined {
  if (!identity) return undefined;
  const strip = (x: ResolvedDevice) => (deviceInputs(fleet, x) as { device: unknown }).device;
  return createHash('sha256')
    .update(stable({ fleet: fleetHash, device: strip(d), peers: peers(fleet, d).map(strip), identity }))
    .digest('hex');
}
