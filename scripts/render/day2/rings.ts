// The two K3s rings: sites with `canary: true` run k3s.canaryVersion while a rollout is in
// progress; every other site runs k3s.version until `edgeforge rollout promote` moves it. A device installs
// its own ring's version at first boot (online, or from its ring's airgap files), so its seed and its site's
// Plans never disagree.
import { k3sAirgapReleaseDir } from '../../device/layout.ts';
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';

export type Ring = 'canary' | 'stable';

export function ringOf(s: Pick<ResolvedSite, 'canary'> | Pick<ResolvedDevice, 'canary'>): Ring {
  return s.canary ? 'canary' : 'stable';
}

export function ringVersion(fleet: Pick<Fleet, 'k3s'>, ring: Ring): string {
  return ring === 'canary' ? (fleet.k3s.canaryVersion ?? fleet.k3s.version) : fleet.k3s.version;
}

/** The K3s version a device's Plans hold it at: its ring's. */
export function deviceK3sVersion(d: Pick<ResolvedDevice, 'canary'>, fleet: Pick<Fleet, 'k3s'>): string {
  return ringVersion(fleet, ringOf(d));
}

/**
 * A ring's K3s airgap files (airgap installs): the stable ring's are k3s.install's, at the root of the K3s
 * partition; during a rollout the canary ring's are k3s.install.canary's (validate requires them), in their
 * release's directory. So a new device installs its own ring's version and its seed and Plans never disagree.
 */
export interface RingAirgap {
  ring: Ring;
  version: string;
  bundle: string;
  sha256: { binary: string; images: string; installScript: string };
  /** directory on the K3s partition ('' = its root) */
  dir: string;
  /** where the pins are in the inventory, for messages */
  key: 'k3s.install' | 'k3s.install.canary';
}

export function ringAirgap(fleet: Pick<Fleet, 'k3s'>, ring: Ring): RingAirgap | undefined {
  const i = fleet.k3s.install;
  if (i.mode !== 'airgap') return undefined;
  if (ring === 'canary' && rolloutInProgress(fleet)) {
    const version = ringVersion(fleet, 'canary');
    // validate refuses a rollout without them; an unvalidated fleet falls back to the stable files, never to nothing
    if (i.canary) return { ring, version, bundle: i.canary.bundle, sha256: i.canary.sha256, dir: k3sAirgapReleaseDir(version), key: 'k3s.install.canary' };
  }
  return { ring: 'stable', version: fleet.k3s.version, bundle: i.bundle, sha256: i.sha256, dir: '', key: 'k3s.install' };
}

/** The version a new device installs at first boot: its ring's (online, or from its ring's airgap files). */
export function deviceInstallVersion(d: Pick<ResolvedDevice, 'canary'>, fleet: Pick<Fleet, 'k3s'>): string {
  return ringAirgap(fleet, ringOf(d))?.version ?? deviceK3sVersion(d, fleet);
}

/** Every release's airgap files the fleet's new devices install from (one per ring in use, the stable first). */
export function fleetAirgapReleases(fleet: Pick<Fleet, 'k3s'>): RingAirgap[] {
  const stable = ringAirgap(fleet, 'stable');
  const canary = ringAirgap(fleet, 'canary');
  if (!stable) return [];
  return canary && canary.key !== stable.key ? [stable, canary] : [stable];
}

export function rolloutInProgress(fleet: Pick<Fleet, 'k3s'>): boolean {
  return fleet.k3s.canaryVersion !== undefined && fleet.k3s.canaryVersion !== fleet.k3s.version;
}

export interface RingSummary {
  ring: Ring;
  version: string;
  sites: string[];
  devices: number;
}

export function ringVersions(fleet: Pick<Fleet, 'k3s' | 'sites'>): RingSummary[] {
  return (['canary', 'stable'] as Ring[])
    .map((ring) => {
      const sites = fleet.sites.filter((s) => ringOf(s) === ring);
      return { ring, version: ringVersion(fleet, ring), sites: sites.map((s) => s.id), devices: sites.reduce((a, s) => a + s.devices.filter((d) => d.status === 'active').length, 0) };
    })
    .filter((r) => r.devices > 0);
}
