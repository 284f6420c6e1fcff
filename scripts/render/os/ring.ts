// The ring pointers devices follow (docs/os-updates.md): per ring, which OS release its devices run and the
// bundle of each layout, signed with the fleet's OS-update key. `edgeforge os publish` writes them beside the
// bundles; a device reads its ring's in its maintenance window from the source (or its inbox), checks the
// signature against its keyring, and refuses one older than the last it accepted (a replayed old pointer
// cannot take it back to a release the fleet left). Plain key=value lines, so a shell reads them with sed.
import type { Fleet } from '../../inventory/fleet.ts';
import type { OsLayout } from '../../inventory/schema.ts';
import { ringOf, type Ring } from '../day2/rings.ts';
import { bundleFileName } from './slots.ts';

export const RING_FORMAT = 'edgeforge-os-ring/1';
export const RINGS: Ring[] = ['canary', 'stable'];
/** the pointer of a ring and its detached signature (CMS, DER), at the source's top level */
export const ringFile = (ring: Ring) => `${ring}.ring`;
export const ringSignature = (ring: Ring) => `${ring}.ring.cms`;
/** bundles sit in this directory of the source */
export const BUNDLES_DIR = 'bundles';

/** A ring's OS release: os.canaryVersion during a rollout for the canary ring, os.version otherwise. */
export function osRingVersion(os: NonNullable<Fleet['os']>, ring: Ring): string {
  return ring === 'canary' ? (os.canaryVersion ?? os.version) : os.version;
}

export function deviceOsVersion(os: NonNullable<Fleet['os']>, d: { canary: boolean }): string {
  return osRingVersion(os, ringOf(d));
}

export interface RingBundle {
  layout: OsLayout;
  sha256: string;
  bytes: number;
}

export function ringPointer(o: { fleet: string; ring: Ring; version: string; issued: number; bundles: RingBundle[] }): string {
  const lines = [`format=${RING_FORMAT}`, `fleet=${o.fleet}`, `ring=${o.ring}`, `version=${o.version}`, `issued=${o.issued}`];
  for (const b of [...o.bundles].sort((x, y) => (x.layout < y.layout ? -1 : 1))) {
    lines.push(`bundle.${b.layout}=${BUNDLES_DIR}/${bundleFileName(o.version, b.layout)}`, `sha256.${b.layout}=${b.sha256}`, `bytes.${b.layout}=${b.bytes}`);
  }
  return lines.join('\n') + '\n';
}
