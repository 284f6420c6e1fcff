// The GitOps side of a site-key rotation, in two halves so a caller can check everything before it changes
// anything: `openExposedFiles` decrypts, in memory, every SOPS file an exposed key could read (fails on the
// first one it cannot open); `reencryptFiles` and `deliverSiteKey` write. Used by `revoke` and
// `keys rotate --site --gitops`.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { isSopsDocument, sopsDecrypt, sopsEncrypt, sopsRecipients, DEFAULT_ENCRYPTED_REGEX, type SopsRecipient } from './sops.ts';
import { renderSopsConfig, sopsRules, sopsKeysFiles, sopsKeysKustomization, sopsKeysSecret, type GitopsPublicKeys } from '../render/gitops/index.ts';
import { siteKeyFile } from '../render/gitops/scaffold.ts';
import { managedArmor } from '../render/gitops/marker.ts';
import type { KeyStore } from '../keys/store.ts';
import { runsFlux } from '../render/flux/sync.ts';
import { parse } from 'yaml';

export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name === '.git') continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

export interface OpenedFile {
  /** relative to the GitOps root, forward slashes */
  rel: string;
  plain: Record<string, unknown>;
  encryptedRegex: string;
  mode: number;
}

const rel = (root: string, f: string) => path.relative(root, f).split(path.sep).join('/');

/**
 * Every SOPS file (outside `skip` prefixes) with a recipient in `exposed`, decrypted with `privateKeyArmored`
 * (the old site key). Throws, naming the file, when one cannot be opened: nothing has been written yet.
 */
export async function openExposedFiles(root: string, exposed: Set<string>, privateKeyArmored: string | undefined, skip: string[]): Promise<OpenedFile[]> {
  const out: OpenedFile[] = [];
  for (const file of await listFiles(root)) {
    const r = rel(root, file);
    if (skip.some((p) => r.startsWith(p))) continue;
    const body = await fs.readFile(file, 'utf8');
    if (!isSopsDocument(body)) continue;
    if (!sopsRecipients(body).some((fp) => exposed.has(fp.toUpperCase()))) continue;
    if (!privateKeyArmored) throw new Error(`${r} is SOPS-encrypted to an exposed key, but there is no site key to open it with`);
    let plain: Record<string, unknown>;
    try {
      plain = await sopsDecrypt(body, privateKeyArmored);
    } catch (err) {
      throw new Error(`${r}: cannot open it with the site key (${(err as Error).message}); it is readable by the exposed key, so re-encrypt it by hand, then run this again`);
    }
    const doc = parse(body) as { sops?: { encrypted_regex?: string } };
    out.push({ rel: r, plain, encryptedRegex: doc.sops?.encrypted_regex ?? DEFAULT_ENCRYPTED_REGEX, mode: (await fs.stat(file)).mode & 0o777 });
  }
  return out;
}

/** Recipients for a path: the first .sops.yaml rule that matches it, as public keys. */
export function recipientsFor(relPath: string, fleet: Fleet, keys: GitopsPublicKeys): SopsRecipient[] {
  const armored = new Map<string, string>();
  for (const k of [...keys.deviceSops.values(), ...keys.siteSops.values(), ...keys.admins]) armored.set(k.fingerprint.toUpperCase(), k.publicArmored);
  const rule = sopsRules(fleet, keys).find((x) => new RegExp(x.path_regex).test(relPath));
  const to = (rule?.recipients ?? []).filter((fp) => armored.has(fp)).map((fp) => ({ fingerprint: fp, publicKeyArmored: armored.get(fp)! }));
  if (!to.length) throw new Error(`no recipients left for ${relPath}`);
  return to;
}

/** New data key for each opened file, encrypted to the recipients its .sops.yaml rule names now. */
export async function reencryptFiles(root: string, files: OpenedFile[], fleet: Fleet, keys: GitopsPublicKeys, now: Date): Promise<string[]> {
  const done: string[] = [];
  for (const f of files) {
    const text = await sopsEncrypt(f.plain, recipientsFor(f.rel, fleet, keys), { now, encryptedRegex: f.encryptedRegex });
    await writeFileAtomic(path.join(root, f.rel), text, { mode: f.mode });
    done.push(f.rel);
  }
  return done;
}

export interface DeviceSopsKey {
  fingerprint: string;
  privateKeyArmored: string;
  publicKeyArmored: string;
}

/** The site's devices that hold the site key in their sops-gpg Secret (the Flux devices: servers). */
export function siteKeyHolders(fleet: Fleet, siteId: string): ResolvedDevice[] {
  return fleet.active.filter((d) => d.siteId === siteId && runsFlux(d));
}

/**
 * For each device: sops-keys/sops-gpg.yaml (its own key + the new site key, encrypted to its own key only)
 * and sops-keys/kustomization.yaml listing it. Returns the paths written.
 */
export async function deliverSiteKey(root: string, devices: ResolvedDevice[], deviceKeys: Map<string, DeviceSopsKey>, sitePrivateArmored: string, now: Date): Promise<string[]> {
  const written: string[] = [];
  for (const d of devices) {
    const k = deviceKeys.get(d.id);
    if (!k) throw new Error(`no SOPS key loaded for ${d.id}`);
    const files = sopsKeysFiles(d);
    const text = await sopsEncrypt(sopsKeysSecret(d, k.privateKeyArmored, sitePrivateArmored), [{ fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored }], { now });
    // no comment line on top: sops reads YAML comments as (encrypted) values
    await writeFileAtomic(path.join(root, files.secret), text, { mode: 0o644 });
    await writeFileAtomic(path.join(root, files.kustomization), sopsKeysKustomization(d, true), { mode: 0o644 });
    written.push(files.secret, files.kustomization);
  }
  return written;
}

/** What a site-key rotation through Git needs, read and checked before anything changes. */
export interface SiteRotationPlan {
  siteId: string;
  holders: ResolvedDevice[];
  holderKeys: Map<string, DeviceSopsKey>;
  opened: OpenedFile[];
}

/**
 * Loads the site's key holders' SOPS keys (admin key needed) and opens every SOPS file an exposed key could read.
 * `exposed`: fingerprints that must lose access (the old site key is always one). Throws before any change.
 */
export async function planSiteRotation(
  ks: Pick<KeyStore, 'loadDeviceIdentity' | 'loadSiteIdentity'>,
  fleet: Fleet,
  siteId: string,
  gitopsDir: string | undefined,
  opts: { exposed?: string[]; skip?: string[] } = {},
): Promise<SiteRotationPlan> {
  const oldSite = await ks.loadSiteIdentity(siteId);
  const holders = siteKeyHolders(fleet, siteId);
  const holderKeys = new Map<string, DeviceSopsKey>();
  for (const h of holders) {
    const id = await ks.loadDeviceIdentity(h.id);
    holderKeys.set(h.id, { fingerprint: id.sops.fingerprint, privateKeyArmored: id.sops.privateKeyArmored, publicKeyArmored: id.sops.publicKeyArmored });
  }
  let opened: OpenedFile[] = [];
  if (gitopsDir) {
    const st = await fs.stat(gitopsDir).catch(() => undefined);
    if (!st?.isDirectory()) throw new Error(`--gitops ${gitopsDir}: no such directory`);
    const exposed = new Set([oldSite.sops.fingerprint, ...(opts.exposed ?? [])].map((x) => x.toUpperCase()));
    opened = await openExposedFiles(gitopsDir, exposed, oldSite.sops.privateKeyArmored, opts.skip ?? []);
  }
  return { siteId, holders, holderKeys, opened };
}

/**
 * After `ks.rotateSite`: re-encrypt what was opened, deliver the new key to each holder, rewrite .sops.yaml and
 * the site's public key in .sops/sites/ (what admins encrypt with; it must name the key .sops.yaml names).
 */
export async function applySiteRotation(
  plan: SiteRotationPlan,
  newSitePrivateArmored: string,
  gitopsDir: string,
  fleet: Fleet,
  keys: GitopsPublicKeys,
  now: Date,
): Promise<{ reencrypted: string[]; siteKeyDelivered: string[] }> {
  const reencrypted = await reencryptFiles(gitopsDir, plan.opened, fleet, keys, now);
  const siteKeyDelivered = await deliverSiteKey(gitopsDir, plan.holders, plan.holderKeys, newSitePrivateArmored, now);
  await writeFileAtomic(path.join(gitopsDir, '.sops.yaml'), renderSopsConfig(fleet, keys));
  const site = fleet.sites.find((s) => s.id === plan.siteId);
  const pub = keys.siteSops.get(plan.siteId);
  if (site && pub && site.devices.some(runsFlux)) await writeFileAtomic(path.join(gitopsDir, siteKeyFile(site)), managedArmor(pub.publicArmored), { mode: 0o644 });
  return { reencrypted, siteKeyDelivered };
}
