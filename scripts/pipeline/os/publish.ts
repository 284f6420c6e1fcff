// `edgeforge os publish --to DIR`: what devices fetch, in one directory to copy to each site's cache (or a web
// server): bundles/<every ring's release>.raucb, checked against the inventory's pins, and per ring its signed
// pointer (canary.ring, stable.ring + .cms). Bundles go first, pointers last: a device never finds a pointer to
// a bundle that is not there yet. `issued` is SOURCE_DATE_EPOCH (the inventory's commit time), so publishing a
// newer inventory makes newer pointers and republishing the same one gives the same bytes.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import type { OsLayout } from '../../inventory/schema.ts';
import { sha256OfFile } from '../../util/hash.ts';
import { tempPathFor, writeFileAtomic } from '../../util/atomic.ts';
import { UserError } from '../../util/errors.ts';
import { cmsSign } from '../../keys/os-key.ts';
import { ringOf } from '../../render/day2/rings.ts';
import { BUNDLES_DIR, osRingVersion, RINGS, ringFile, ringPointer, ringSignature, type RingBundle } from '../../render/os/ring.ts';
import { bundleFileName } from '../../render/os/slots.ts';
import { isAbDevice } from '../../inventory/os.ts';

export interface PublishResult {
  dir: string;
  rings: { ring: string; version: string; bundles: RingBundle[] }[];
  bundles: { file: string; how: 'linked' | 'copied' | 'reused' }[];
}

async function placeBundle(src: string, dst: string, sha256: string): Promise<'linked' | 'copied' | 'reused'> {
  try {
    const [a, b] = await Promise.all([fs.stat(src), fs.stat(dst)]);
    if (a.ino === b.ino && a.dev === b.dev) return 'reused';
  } catch {
    /* not there yet */
  }
  const tmp = tempPathFor(dst);
  let how: 'linked' | 'copied' = 'linked';
  try {
    await fs.link(src, tmp);
  } catch {
    how = 'copied';
    await fs.copyFile(src, tmp);
    if ((await sha256OfFile(tmp)).sha256 !== sha256) throw new UserError(`${dst}: the copy does not hash to ${sha256}`);
  }
  await fs.rename(tmp, dst);
  return how;
}

export async function publishOs(o: { fleet: Fleet; inventoryPath: string; toDir: string; issued: number; certPem: string; keyPem: string }): Promise<PublishResult> {
  const os = o.fleet.os;
  if (!os) throw new UserError(`${o.fleet.file} has no os: block: nothing to publish (docs/os-updates.md)`);
  const invDir = path.dirname(o.inventoryPath);
  // every ring's release, for the layouts its devices use
  const want = new Map<string, { version: string; layout: OsLayout }>();
  const ringLayouts = new Map<string, Set<OsLayout>>();
  for (const d of o.fleet.active) {
    if (!isAbDevice(o.fleet, d)) continue;
    const version = osRingVersion(os, ringOf(d));
    const layout = d.profile.baseImage.layout;
    want.set(`${version}/${layout}`, { version, layout });
    if (!ringLayouts.has(ringOf(d))) ringLayouts.set(ringOf(d), new Set());
    ringLayouts.get(ringOf(d))!.add(layout);
  }
  const problems: string[] = [];
  const checked = new Map<string, RingBundle & { src: string }>();
  for (const { version, layout } of want.values()) {
    const pin = os.releases[version]?.[layout];
    if (!pin) continue; // validate already refused it
    const src = path.resolve(invDir, pin.file);
    const h = await sha256OfFile(src).catch(() => undefined);
    if (!h) problems.push(`os.releases.${version}.${layout}.file: ${src} does not exist`);
    else if (h.sha256 !== pin.sha256) problems.push(`os.releases.${version}.${layout}: ${src} has sha256 ${h.sha256}, the inventory pins ${pin.sha256}`);
    else checked.set(`${version}/${layout}`, { layout, sha256: h.sha256, bytes: h.bytes, src });
  }
  if (problems.length) throw new UserError(`${problems.join('\n')}\nnothing was published`);
  const bundlesDir = path.join(o.toDir, BUNDLES_DIR);
  await fs.mkdir(bundlesDir, { recursive: true });
  const bundles: PublishResult['bundles'] = [];
  for (const [key, b] of checked) {
    const dst = path.join(bundlesDir, bundleFileName(key.split('/')[0], b.layout));
    bundles.push({ file: path.relative(o.toDir, dst), how: await placeBundle(b.src, dst, b.sha256) });
  }
  const certFile = path.join(o.toDir, '.os-update-cert.pem');
  await writeFileAtomic(certFile, o.certPem);
  const rings: PublishResult['rings'] = [];
  try {
    for (const ring of RINGS) {
      const version = osRingVersion(os, ring);
      const layouts = ringLayouts.get(ring) ?? new Set<OsLayout>();
      const rb = [...checked]
        .filter(([k, b]) => k.startsWith(`${version}/`) && layouts.has(b.layout))
        .map(([, b]) => ({ layout: b.layout, sha256: b.sha256, bytes: b.bytes }))
        .sort((a, b) => (a.layout < b.layout ? -1 : 1));
      if (!rb.length) continue; // no device in this ring
      const text = ringPointer({ fleet: o.fleet.name, ring, version, issued: o.issued, bundles: rb });
      const ptr = path.join(o.toDir, ringFile(ring));
      const staged = `${tempPathFor(ptr)}.ring`;
      await fs.writeFile(staged, text);
      try {
        // signature first, pointer last: a pointer is never there without its signature
        await writeFileAtomic(path.join(o.toDir, ringSignature(ring)), cmsSign(staged, certFile, o.keyPem));
        await fs.rename(staged, ptr);
      } finally {
        await fs.rm(staged, { force: true });
      }
      rings.push({ ring, version, bundles: rb });
    }
  } finally {
    await fs.rm(certFile, { force: true });
  }
  return { dir: o.toDir, rings, bundles };
}
