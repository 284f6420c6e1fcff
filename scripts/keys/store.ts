// The fleet keystore on disk (layout: keys/README.md, paths: layout.ts).
// Public parts in clear (public.json per device/site, the build key's public key); every private part
// OpenPGP-encrypted to all admin recipients, one file per device/site generation. Generating needs only the
// admins' PUBLIC keys; reading private material back (to render seeds, sign, recover) needs one admin's
// private key: EDGEFORGE_ADMIN_KEY, or the example admin key of a demo fleet.
// This file is the handle callers hold; each operation lives in its own file (init, unlock, identity, ensure,
// rotate, list, recover, rewrap, build-key).
import { KeysLayout } from './layout.ts';
import { PgpPool, defaultPoolSize } from './pool.ts';
import { AdminKeyring } from './unlock.ts';
import { BuildKey } from './build-key.ts';
import { loadOne, type StoreContext } from './identity.ts';
import { ensureIdentities } from './ensure.ts';
import { rotateIdentity } from './rotate.ts';
import { listIdentities } from './list.ts';
import { recoverDevice } from './recover.ts';
import { rewrapAll } from './rewrap.ts';
import type { VerifyResult } from './signing.ts';
import {
  DEFAULT_KEY_DATE,
  type AdminRecipient,
  type DeviceIdentity,
  type EnsureResult,
  type KeyListing,
  type KeyStoreOptions,
  type Progress,
  type RecoveryInfo,
  type RotationResult,
  type SiteIdentity,
} from './types.ts';

/** Open the keystore. Cheap: nothing is decrypted until private material is asked for. Call close() when done. */
export async function openKeyStore(opts: KeyStoreOptions = {}): Promise<KeyStore> {
  const store = new KeyStore(opts);
  await store.refreshAdmins();
  return store;
}

export class KeyStore implements StoreContext {
  readonly dir: string;
  readonly layout: KeysLayout;
  readonly keyDate: string;
  readonly pool: PgpPool;
  readonly admins: AdminKeyring;
  private readonly build: BuildKey;

  constructor(opts: KeyStoreOptions = {}) {
    this.dir = opts.dir ?? 'keys';
    this.layout = new KeysLayout(this.dir);
    this.keyDate = opts.keyDate ?? DEFAULT_KEY_DATE;
    this.pool = new PgpPool(opts.workers ?? defaultPoolSize());
    this.admins = new AdminKeyring(this.dir, this.layout, opts);
    this.build = new BuildKey(this.dir, this.layout, (file) => this.admins.decrypt(file));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  refreshAdmins(): Promise<AdminRecipient[]> {
    return this.admins.refresh();
  }

  /** Admin recipients (public keys), e.g. for the `pgp:` list of .sops.yaml so admins can always decrypt. */
  adminRecipients(): AdminRecipient[] {
    return this.admins.recipients();
  }

  /** Find the admin private key (EDGEFORGE_ADMIN_KEY or the example admin) and check it is one of the recipients. */
  unlock(): Promise<{ fingerprint: string; source: string }> {
    return this.admins.unlock();
  }

  // ---------- devices and sites ----------

  /** Load each device's identity, generating (and storing, encrypted) the ones that do not exist yet. */
  ensureDeviceIdentities(ids: string[], p: Progress = {}): Promise<EnsureResult<DeviceIdentity>> {
    return ensureIdentities<DeviceIdentity>(this, 'device', ids, p);
  }

  /** Same for sites ("<region>/<site>"): the site's shared SOPS key. */
  ensureSiteIdentities(siteIds: string[], p: Progress = {}): Promise<EnsureResult<SiteIdentity>> {
    return ensureIdentities<SiteIdentity>(this, 'site', siteIds, p);
  }

  /** One device's identity; `generation` picks an older one from its history. Throws if it does not exist. */
  async loadDeviceIdentity(id: string, generation?: number): Promise<DeviceIdentity> {
    return (await loadOne(this, 'device', id, generation)) as DeviceIdentity;
  }

  async loadSiteIdentity(siteId: string, generation?: number): Promise<SiteIdentity> {
    return (await loadOne(this, 'site', siteId, generation)) as SiteIdentity;
  }

  /** New keys for a device (old generation kept for recovery); says what must be redeployed. */
  rotateDevice(id: string, opts: { reason?: string } = {}): Promise<RotationResult> {
    return rotateIdentity(this, 'device', id, opts.reason ?? 'rotate');
  }

  /** New site SOPS key (revoke of a device at the site calls this); says what must be re-encrypted/redeployed. */
  rotateSite(siteId: string, opts: { reason?: string } = {}): Promise<RotationResult> {
    return rotateIdentity(this, 'site', siteId, opts.reason ?? 'rotate');
  }

  /** Every identity with fingerprints and status. Reads public files only: needs no admin key. */
  listIdentities(): Promise<KeyListing> {
    return listIdentities(this, this.build);
  }

  /** `keys recover ID`: the device's LUKS recovery passphrase(s), newest first. Needs the admin key. */
  recoverDevice(id: string): Promise<RecoveryInfo> {
    return recoverDevice(this, id);
  }

  /**
   * Re-encrypt every private file to the current admin recipients (after adding or removing an admin).
   * Removing an admin this way does not un-leak what they could already read: rotate too.
   */
  rewrapAll(): Promise<{ files: number }> {
    return rewrapAll(this, this.build);
  }

  // ---------- build signing ----------

  buildPublicKeyArmored(): Promise<string> {
    return this.build.publicKeyArmored();
  }

  buildKeyFingerprint(): Promise<string> {
    return this.build.fingerprint();
  }

  /** Armored detached signature (manifest.json.asc). `sourceDateEpoch` (seconds) makes it reproducible. */
  signDetached(data: Uint8Array, opts: { sourceDateEpoch?: number } = {}): Promise<string> {
    return this.build.signDetached(data, opts);
  }

  /** Verify with the build key in keys/, pinned to `pinnedFingerprint` (default: keys/build/signing-key.fingerprint). */
  verifyDetached(data: Uint8Array, signatureArmored: string, pinnedFingerprint?: string): Promise<VerifyResult> {
    return this.build.verifyDetached(data, signatureArmored, pinnedFingerprint);
  }
}
