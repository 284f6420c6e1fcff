// A fleet in a directory, as an operator has it: inventory, the pinned Flux bundle (a stand-in carrying Flux
// v2.9.6's own CRDs), keys/ with the example admin, and a CLI runner on a fixed clock.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initKeys } from '../../scripts/keys/init.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { runCli } from '../helpers.ts';
import { fakeBundle } from '../gitops/fixtures.ts';

export const NOW = '1796860800'; // 2026-12-10T00:00:00Z
export const bundle = fakeBundle();
export const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };

/** The inventory at the start: stable ring on the v1.34 line, a rollout to v1.35.6 in progress. */
export function startOf(text: string): string {
  return text.replace(/^  version: v1\.36\.5\+k3s1\n/m, '  version: v1.34.9+k3s1\n  canaryVersion: v1.35.6+k3s1\n');
}

export function generatedText(n: number): string {
  // every site one multi-node cluster (a 200-device fleet has 5 sites; the default makes every tenth one so)
  return generateInventory(n, { multiNode: 'all' })
    .replace(/^  flux: .*\n/m, '')
    .replace(/^(  knownHosts: .*)$/m, `$1\n  flux:\n    version: v2.9.6\n    install: ${JSON.stringify(install)}`);
}

export interface FleetDir {
  dir: string;
  fleet: () => Fleet;
  /** the CLI in the directory (-i fleet.yaml --keys keys), the clock at NOW */
  run: (...a: string[]) => ReturnType<typeof runCli>;
  /** the same with another clock (EDGEFORGE_NOW, epoch seconds) */
  runAt: (now: string, ...a: string[]) => ReturnType<typeof runCli>;
}

export async function fleetDir(text: string): Promise<FleetDir> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ef-sequence-'));
  writeFileSync(path.join(dir, 'fleet.yaml'), text);
  mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
  writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), bundle.bytes);
  const fleet = () => loadInventoryBytes(readFileSync(path.join(dir, 'fleet.yaml')), 'fleet.yaml');
  await initKeys({ dir: path.join(dir, 'keys'), exampleAdmin: true, fleet: fleet().name });
  const ks = await openKeyStore({ dir: path.join(dir, 'keys') });
  await ks.ensureSiteIdentities(fleet().sites.map((s) => s.id));
  await ks.ensureDeviceIdentities(fleet().active.map((d) => d.id));
  await ks.close();
  const keys = (a: string[]) => (a[0] === 'rollout' ? [] : ['--keys', 'keys']);
  const runAt = (now: string, ...a: string[]) => runCli([...a, '-i', 'fleet.yaml', ...keys(a)], { cwd: dir, env: { EDGEFORGE_NOW: now, SOURCE_DATE_EPOCH: NOW } });
  return { dir, fleet, run: (...a) => runAt(NOW, ...a), runAt };
}
