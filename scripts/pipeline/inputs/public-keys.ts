// The public halves of the fleet's SOPS keys, read from keys/ without unlocking anything:
//   keys/devices/<id>/public.json, keys/sites/<region>/<site>/public.json  ({sops: {fingerprint, publicKeyArmored}})
//   keys/admins/*.asc                                                       (admin recipients)
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as openpgp from '../../util/openpgp.mjs';
import type { Fleet } from '../../inventory/fleet.ts';
import { runsFlux } from '../../render/flux/sync.ts';
import type { GitopsPublicKeys, PgpPublic } from '../../render/gitops/sops.ts';

async function readSops(file: string): Promise<PgpPublic | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const rec = JSON.parse(text) as { sops?: { fingerprint?: string; publicKeyArmored?: string } };
  if (!rec.sops?.fingerprint || !rec.sops.publicKeyArmored) throw new Error(`${file}: has no sops {fingerprint, publicKeyArmored}`);
  return { fingerprint: rec.sops.fingerprint.toUpperCase(), publicArmored: rec.sops.publicKeyArmored };
}

export async function loadAdminKeys(keysDir: string): Promise<(PgpPublic & { name?: string })[]> {
  const dir = path.join(keysDir, 'admins');
  let names: string[] = [];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.asc')).sort();
  } catch {
    return [];
  }
  const out: (PgpPublic & { name?: string })[] = [];
  for (const n of names) {
    const armored = await fs.readFile(path.join(dir, n), 'utf8');
    const keys = await openpgp.readKeys({ armoredKeys: armored });
    for (const k of keys) {
      if (k.isPrivate()) throw new Error(`${path.join(dir, n)}: holds a PRIVATE key; keys/admins/ must hold public keys only`);
      out.push({ fingerprint: k.getFingerprint().toUpperCase(), publicArmored: k.armor(), name: k.getUserIDs()[0] });
    }
  }
  return out;
}

export async function loadGitopsPublicKeys(keysDir: string, fleet: Fleet): Promise<GitopsPublicKeys> {
  const deviceSops = new Map<string, PgpPublic>();
  const siteSops = new Map<string, PgpPublic>();
  for (const d of fleet.active.filter(runsFlux)) {
    const k = await readSops(path.join(keysDir, 'devices', d.id, 'public.json'));
    if (k) deviceSops.set(d.id, k);
  }
  for (const s of fleet.sites) {
    const k = await readSops(path.join(keysDir, 'sites', s.region, s.name, 'public.json'));
    if (k) siteSops.set(s.id, k);
  }
  return { deviceSops, siteSops, admins: await loadAdminKeys(keysDir) };
}
