// The two K3s rings (issue #18): sites with `canary: true` run k3s.canaryVersion while a rollout is in
// progress; every other site runs k3s.version until `edgeforge rollout promote` moves it. A device installs
// its own ring's version at first boot, so its seed and its site's Plans never disagree.
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
 * The version a new device installs at first boot. Online: its ring's (the stable tag's install.sh, whose
 * sha256 is pinned, installs any release), so seed and Plans agree from the start. Airgap: the bundle holds
 * one binary, k3s.version's; a canary device starts on it and its Plan upgrades it in its first window.
 */
export function deviceInstallVersion(d: Pick<ResolvedDevice, 'canary'>, fleet: Pick<Fleet, 'k3s'>): string {
  return fleet.k3s.install.mode === 'online' ? deviceK3sVersion(d, fleet) : fleet.k3s.version;
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
