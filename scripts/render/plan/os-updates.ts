// The plan's OS-updates part of Day 2 (docs/os-updates.md): which devices have A/B cards, each ring's release
// and its bundles, where devices fetch them, the health check and what a rollback looks like. Derived from the
// inventory; without os: it says what the fleet does instead (nothing updates the root filesystem).
import type { Fleet } from '../../inventory/fleet.ts';
import { isAbDevice } from '../../inventory/os.ts';
import { ringOf } from '../day2/rings.ts';
import { osRingVersion, RINGS } from '../os/ring.ts';
import { HEALTH_TIMEOUT_SEC, osSource } from '../os/compose.ts';
import { names } from './md.ts';

export interface OsUpdatesPlan {
  devices: number;
  singleRoot: number;
  rings: { ring: string; version: string; devices: number; bundles: string[] }[];
  sources: { source: string; sites: string[] }[];
}

export function osUpdatesPlan(fleet: Fleet): OsUpdatesPlan | undefined {
  const os = fleet.os;
  if (!os) return undefined;
  const ab = fleet.active.filter((d) => isAbDevice(fleet, d));
  const rings = RINGS.map((ring) => {
    const ds = ab.filter((d) => ringOf(d) === ring);
    const version = osRingVersion(os, ring);
    const layouts = [...new Set(ds.map((d) => d.profile.baseImage.layout))].sort();
    return {
      ring,
      version,
      devices: ds.length,
      bundles: layouts.map((l) => `${l}: \`${os.releases[version]?.[l]?.file ?? '(missing)'}\` sha256 ${os.releases[version]?.[l]?.sha256.slice(0, 12) ?? '?'}…`),
    };
  }).filter((r) => r.devices > 0);
  const bySource = new Map<string, Set<string>>();
  for (const d of ab) {
    const src = osSource(fleet, d) || '(none: the inbox only)';
    if (!bySource.has(src)) bySource.set(src, new Set());
    bySource.get(src)!.add(d.siteId);
  }
  return { devices: ab.length, singleRoot: fleet.active.length - ab.length, rings, sources: [...bySource].map(([source, sites]) => ({ source, sites: [...sites] })) };
}

export function osUpdatesMarkdown(fleet: Fleet, table: (head: string[], rows: (string | number | undefined)[][]) => string): string[] {
  const p = osUpdatesPlan(fleet);
  const o = ['### OS updates', ''];
  if (!p) {
    o.push(
      "This fleet has no `os:` block: every card has one root filesystem, which nothing updates after the card is written (a new OS means a new image and a reflash, or the distribution's own package updates). With `os:`, cards get two root slots and RAUC updates them in these rings and windows (docs/os-updates.md).",
      '',
    );
    return o;
  }
  o.push(
    `${p.devices} device(s) have A/B cards${p.singleRoot ? ` (${p.singleRoot} of other profiles keep one root)` : ''}: RAUC installs their ring's release into the slot that is not running, inside the site's maintenance window (the windows above), and the device reboots into it for one try. After every boot \`edgeforge-os-health\` waits up to ${HEALTH_TIMEOUT_SEC / 60} minutes for first boot to be done, the data volume open, K3s, the firewall and SSH active, then marks the slot good; a failed unit or the time running out marks it bad and reboots, and a slot that panics or hangs is skipped by the boot loader at the next boot: the device comes back on the release it ran by itself and reports the rollback (\`edgeforge status\`). A release that came back twice in a row waits for a person.`,
    '',
    table(
      ['ring', 'OS release', 'devices', 'bundles'],
      p.rings.map((r) => [r.ring, r.version, r.devices, r.bundles.join('; ')]),
    ),
    '',
    table(
      ['where devices fetch pointers and bundles', 'sites'],
      p.sources.map((s) => [s.source, names(s.sites)]),
    ),
    '',
    '```bash',
    '# a new release: its bundle, then the canary ring (os.canaryVersion), then everyone (os.version)',
    'edgeforge os bundle --base-image NEW.img --version V   # prints the os.releases lines',
    'edgeforge os publish --to DIR                           # bundles + signed ring pointers; copy DIR to the cache(s)',
    '```',
    '',
  );
  return o;
}
