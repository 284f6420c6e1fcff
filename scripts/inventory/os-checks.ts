// The inventory's `os:` block checked against the fleet (docs/os-updates.md): every ring's release exists for
// every base-image layout its devices use, and every device can keep its state across a root-slot switch.
// Each problem is [data path, message]; resolve.ts positions them (FILE:LINE:COL).
import type { ResolvedDevice } from './fleet.ts';
import type { Inventory, OsLayout } from './schema.ts';
import type { PathKey } from './problems.ts';
import { isAbDevice } from './os.ts';

/** Space the A/B layout needs besides the two root slots: the boot partitions, the K3s partition's slack, the data volume's minimum. */
export const OS_OVERHEAD_MIB = 1024 + 512;

export function osProblems(inv: Inventory, allActive: ResolvedDevice[]): [PathKey[], string][] {
  const os = inv.os;
  if (!os) return [];
  const out: [PathKey[], string][] = [];
  for (const [i, p] of (os.profiles ?? []).entries())
    if (!inv.profiles[p]) out.push([['os', 'profiles', i], `profile "${p}" is not defined under "profiles" (${Object.keys(inv.profiles).join(', ')})`]);
  const active = allActive.filter((d) => d.profile && isAbDevice({ os }, d));
  // one build's base image serves one kind of card per layout: A/B and single-root profiles cannot share a layout
  const abLayouts = new Map<string, string>();
  for (const d of active) abLayouts.set(d.profile.baseImage.layout, d.profileName);
  for (const d of allActive) {
    if (!d.profile || isAbDevice({ os }, d) || !abLayouts.has(d.profile.baseImage.layout)) continue;
    out.push([
      ['os', 'profiles'],
      `profile ${d.profileName} (single root) and profile ${abLayouts.get(d.profile.baseImage.layout)} (A/B) both use the ${d.profile.baseImage.layout} layout, and one build's base image makes one kind of card per layout: list both in os.profiles, or neither`,
    ]);
    abLayouts.delete(d.profile.baseImage.layout);
  }
  const rings: [string, 'version' | 'canaryVersion', boolean][] = [[os.version, 'version', false]];
  if (os.canaryVersion !== undefined && os.canaryVersion !== os.version) rings.push([os.canaryVersion, 'canaryVersion', true]);
  for (const [v, key] of rings) {
    if (!os.releases[v])
      out.push([
        ['os', key],
        `release ${JSON.stringify(v)} is not under os.releases (${Object.keys(os.releases).join(', ') || 'none'}): make its bundle with \`edgeforge os bundle --base-image FILE --version ${v}\` and add the lines it prints`,
      ]);
  }
  // each ring's release must exist for each layout its devices use
  for (const [v, key, canary] of rings) {
    const rel = os.releases[v];
    if (!rel) continue;
    const layouts = new Set<OsLayout>(active.filter((d) => d.profile && d.canary === canary).map((d) => d.profile.baseImage.layout));
    for (const l of layouts) {
      if (!rel[l])
        out.push([
          ['os', 'releases', v],
          `the ${canary ? 'canary' : 'stable'} ring (os.${key}) has devices on the ${l} layout, but release ${v} has no ${l} bundle: add ${l}: {file, sha256, baseImageSha256} (\`edgeforge os bundle --layout ${l} ...\`)`,
        ]);
    }
  }
  const byProfile = new Map<string, ResolvedDevice>();
  for (const d of active) if (d.profile && !byProfile.has(d.profileName)) byProfile.set(d.profileName, d);
  for (const [name, d] of byProfile) {
    const sizeMiB = Math.floor((d.profile.storage.sizeGB * 1e9) / 1048576);
    if (os.slotMiB !== undefined && 2 * os.slotMiB + OS_OVERHEAD_MIB > sizeMiB * 0.95) {
      out.push([
        ['os', 'slotMiB'],
        `two root slots of ${os.slotMiB} MiB do not fit profile ${name}'s ${d.profile.storage.sizeGB} GB ${d.profile.storage.medium} with its boot partitions and a data volume of at least 1 GiB: use a smaller os.slotMiB`,
      ]);
    }
    if (d.profile.baseImage.layout === 'raspi-mbr' && inv.k3s.install.mode === 'airgap') {
      out.push([
        ['profiles', name, 'baseImage', 'layout'],
        `OS updates on the raspi-mbr layout do not carry the K3s airgap partition yet (its MBR has no primary slot left for it): use k3s.install.mode online for Raspberry Pi devices with os:, or leave os: out (docs/os-updates.md)`,
      ]);
    }
  }
  // an update replaces the root filesystem: K3s's state and the device's secrets must live on the data volume
  const plainBySite = new Map<string, ResolvedDevice>();
  for (const d of active) if (d.encryption.mode === 'none' && !plainBySite.has(d.siteId)) plainBySite.set(d.siteId, d);
  for (const [site, d] of plainBySite) {
    out.push([
      d.source.path,
      `OS updates (os:) replace the root filesystem, and ${d.id} at ${site} has no data volume (encryption mode none), so its K3s state would live on the root and be left behind: set encryption (tang, tpm2 or tang+tpm2) for it, or leave os: out`,
    ]);
  }
  const siteIds = new Set(Object.entries(inv.regions).flatMap(([r, region]) => Object.keys(region.sites).map((s) => `${r}/${s}`)));
  for (const s of Object.keys(os.source?.sites ?? {})) {
    if (!siteIds.has(s)) out.push([['os', 'source', 'sites', s], `no site ${JSON.stringify(s)} in this inventory (sites are "<region>/<site>")`]);
  }
  return out;
}
