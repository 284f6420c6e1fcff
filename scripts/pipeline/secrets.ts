// Device secrets from the fleet keystore (scripts/keys): each device's identity, generated on first use
// and stored encrypted to the admins; an agent gets its own join token (keys/join-token.ts). The build never
// generates secrets itself, so a rebuild renders the same bytes.
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { DeviceSecrets } from '../render/device.ts';
import { initKeys } from '../keys/init.ts';
import { openKeyStore, type KeyStore } from '../keys/store.ts';
import type { DeviceIdentity } from '../keys/types.ts';
import { KeysError, UserError } from '../util/errors.ts';
import { identityDigest } from '../keys/digest.ts';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { agentJoinToken } from '../keys/join-token.ts';
import { ensureStatusCredentials, keystoreCrypto, readStatusCredential } from '../keys/status-credentials.ts';

export interface SecretsSource {
  /** secrets for these devices (created in keys/ when missing); progress counts the identities it takes (devices', sites') */
  secretsFor(devices: ResolvedDevice[], onProgress?: (done: number, total: number) => void): Promise<Map<string, DeviceSecrets>>;
  /** armored detached signature over the manifest, and the public key to copy beside it */
  sign(data: Uint8Array, sourceDateEpoch: number): Promise<{ signature: string; publicKey: string; fingerprint: string }>;
  /**
   * Per device, a digest of every identity its rendering reads (its own, its server's for an agent, its site's),
   * computed WITHOUT decrypting anything (scripts/keys/digest.ts); undefined for a device whose identity does not
   * exist yet. Absent: the source cannot say, and the build renders every device.
   */
  identities?(devices: ResolvedDevice[]): Promise<Map<string, string | undefined>>;
  /** is this detached signature over `data` by the fleet's (pinned) build key? Absent: nothing previous is trusted */
  verifySignature?(data: Uint8Array, signature: string): Promise<boolean>;
  close(): Promise<void>;
}

export function toDeviceSecrets(own: DeviceIdentity, isAgent: boolean, siteSops?: { fingerprint: string; privateKeyArmored: string }): DeviceSecrets {
  return {
    sshHostKey: { privateKey: own.sshHostKey.privateKey, publicKey: own.sshHostKey.publicKey },
    k3sToken: own.k3sToken,
    // an agent joins with its own bootstrap token (its server holds one Secret per agent, delivered through Git);
    // a server keeps its own agent-token, which no agent carries
    agentToken: isAgent ? agentJoinToken(own).token : own.agentToken,
    deployKey: { privateKey: own.deployKey.privateKey, publicKey: own.deployKey.publicKey },
    sops: { fingerprint: own.sops.fingerprint, privateKeyArmored: own.sops.privateKeyArmored },
    siteSops,
    luksRecovery: own.luksRecovery,
  };
}

function keysFailure(err: unknown): never {
  if (err instanceof KeysError) throw new UserError(err.message, err.kind === 'usage' ? 2 : 1);
  throw err;
}

type KeystoreOptions = { dir: string; fleet: Fleet; exampleAdmin: boolean; warn: (line: string) => void; withSiteSops: boolean };
type SiteSops = { fingerprint: string; privateKeyArmored: string };

/**
 * The keystore in `dir`. Without admin recipients it refuses, unless `exampleAdmin` (the bundled example
 * fleet): then `keys init` runs with a generated EXAMPLE admin key and `warn` gets the loud warning.
 */
export async function keystoreSecrets(opts: KeystoreOptions): Promise<SecretsSource> {
  const store = await openFleetKeystore(opts);
  return {
    async secretsFor(devices, onProgress) {
      try {
        return await secretsFromStore(store, opts, devices, onProgress);
      } catch (err) {
        keysFailure(err);
      }
    },
    async sign(data, sourceDateEpoch) {
      try {
        return {
          signature: await store.signDetached(data, { sourceDateEpoch }),
          publicKey: await store.buildPublicKeyArmored(),
          fingerprint: await store.buildKeyFingerprint(),
        };
      } catch (err) {
        keysFailure(err);
      }
    },
    identities: (devices) => identityDigests(opts, devices),
    async verifySignature(data, signature) {
      try {
        return (await store.verifyDetached(data, signature)).ok;
      } catch {
        return false;
      }
    },
    close: () => store.close(),
  };
}

/** `keys init` (idempotent: creates only what is missing, says what it created), then the store opened. */
async function openFleetKeystore(opts: KeystoreOptions): Promise<KeyStore> {
  try {
    const init = await initKeys({ dir: opts.dir, exampleAdmin: opts.exampleAdmin, fleet: opts.fleet.name });
    if (init.created.length) opts.warn(`keys: created ${init.created.join(', ')} in ${opts.dir}/`);
    for (const w of init.warnings) opts.warn(`WARNING: ${w}`);
    return await openKeyStore({ dir: opts.dir });
  } catch (err) {
    keysFailure(err);
  }
}

/** Each device's identity, its site's SOPS key and its broker password: made when missing, then read. */
async function secretsFromStore(store: KeyStore, opts: KeystoreOptions, devices: ResolvedDevice[], onProgress?: (done: number, total: number) => void): Promise<Map<string, DeviceSecrets>> {
  const ids = new Set(devices.map((d) => d.id));
  const siteIds = opts.withSiteSops ? [...new Set(devices.map((d) => d.siteId))] : [];
  // progress counts every identity this takes, the devices' and then their sites'
  const total = ids.size + siteIds.length;
  const { identities, created } = await store.ensureDeviceIdentities([...ids], { onProgress: (done) => onProgress?.(done, total) });
  if (created.length) opts.warn(`keys: generated identities for ${created.length} device(s) (stored encrypted in ${opts.dir}/devices/)`);
  const sites = new Map<string, SiteSops>();
  if (siteIds.length) {
    const s = await store.ensureSiteIdentities(siteIds, { onProgress: (done) => onProgress?.(ids.size + done, total) });
    for (const [id, site] of s.identities) sites.set(id, { fingerprint: site.sops.fingerprint, privateKeyArmored: site.sops.privateKeyArmored });
  }
  const status = opts.fleet.status ? await brokerPasswords(store, opts, devices) : undefined;
  const out = new Map<string, DeviceSecrets>();
  for (const d of devices) {
    out.set(d.id, { ...toDeviceSecrets(identities.get(d.id)!, d.cluster.kind === 'multi-node-agent', sites.get(d.siteId)), ...(status ? { statusPassword: status.get(d.id) } : {}) });
  }
  return out;
}

/** Fleet status: each device's broker password, made with its other keys (scripts/keys/status-credentials.ts). */
async function brokerPasswords(store: KeyStore, opts: KeystoreOptions, devices: ResolvedDevice[]): Promise<Map<string, string>> {
  const r = await ensureStatusCredentials(
    opts.dir,
    devices.map((d) => d.id),
    keystoreCrypto(store),
  );
  if (r.created.length) opts.warn(`keys: generated broker credentials for ${r.created.length} device(s) (fleet status; run \`edgeforge status broker-config\` and reload the broker)`);
  return r.passwords;
}

/** SecretsSource.identities: per device, one digest over every identity its rendering reads, nothing decrypted. */
async function identityDigests(opts: KeystoreOptions, devices: ResolvedDevice[]): Promise<Map<string, string | undefined>> {
  const limit = pLimit(32);
  const statusOn = Boolean(opts.fleet.status);
  const digests = new Map<string, Promise<string | undefined>>();
  const digest = (kind: 'device' | 'site', id: string) => {
    const k = `${kind}:${id}`;
    if (!digests.has(k))
      digests.set(
        k,
        limit(() => identityDigest(opts.dir, kind, id)),
      );
    return digests.get(k)!;
  };
  const out = new Map<string, string | undefined>();
  await Promise.all(
    devices.map(async (d) => {
      const parts = await Promise.all([
        digest('device', d.id),
        d.cluster.kind === 'multi-node-agent' ? digest('device', d.cluster.serverId) : Promise.resolve('-'),
        opts.withSiteSops ? digest('site', d.siteId) : Promise.resolve('-'),
        // fleet status: the broker credential's generation (a rotation re-renders the device; none yet: render)
        statusOn ? readStatusCredential(opts.dir, d.id).then((r) => (r && !r.disabled ? `status-g${r.generation}:${r.mosquittoHash}` : undefined)) : Promise.resolve('-'),
      ]);
      out.set(d.id, parts.some((p) => p === undefined) ? undefined : createHash('sha256').update(parts.join('\0')).digest('hex'));
    }),
  );
  return out;
}
