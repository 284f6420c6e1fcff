// One generation of a device's or site's material: generated and stored (private file, then public.json),
// or decrypted and cross-checked against its public record.
import { writeFileAtomic } from '../util/atomic.ts';
import { fingerprintOfBlob, generateSshKeyPair, parseSshPrivateKey, type SshKeyPair } from './ssh.ts';
import { agentToken, k3sToken, luksRecoveryPassphrase } from './secrets.ts';
import type { PgpPool } from './pool.ts';
import type { KeysLayout } from './layout.ts';
import type { AdminKeyring } from './unlock.ts';
import { KeysError } from '../util/errors.ts';
import { entityDir, fingerprintsOf, json, pgpMaterial, readRecord, type AnyRecord } from './records.ts';
import type { DeviceIdentity, EntityKind, HistoryEntry, SiteIdentity } from './types.ts';

/** What every keystore operation works with (KeyStore in store.ts is one). */
export interface StoreContext {
  readonly dir: string;
  readonly layout: KeysLayout;
  readonly keyDate: string;
  readonly pool: PgpPool;
  readonly admins: AdminKeyring;
}

/** Generate one generation's material, write its private file then public.json (the commit point). */
export async function generateIdentity(ctx: StoreContext, kind: EntityKind, id: string, generation: number, history: HistoryEntry[]): Promise<DeviceIdentity | SiteIdentity> {
  const recipients = ctx.admins.recipientsOrThrow();
  const edir = entityDir(ctx.layout, kind, id);
  const uidName = kind === 'device' ? `edgeforge sops device ${id}` : `edgeforge sops site ${id}`;
  const uidEmail = kind === 'device' ? `${id}@devices.edgeforge.invalid` : `${id.replace('/', '.')}@sites.edgeforge.invalid`;
  let plain: Record<string, unknown>;
  let ssh: { sshHostKey: SshKeyPair; deployKey: SshKeyPair } | undefined;
  let tokens: { k3sToken: string; agentToken: string; luksRecovery: string } | undefined;
  if (kind === 'device') {
    ssh = { sshHostKey: generateSshKeyPair(`root@${id}`), deployKey: generateSshKeyPair(`flux-deploy@${id}`) };
    tokens = { k3sToken: k3sToken(), agentToken: agentToken(), luksRecovery: luksRecoveryPassphrase() };
    plain = {
      format: 'edgeforge-device-secrets/1',
      id,
      generation,
      sshHostKey: { privateKey: ssh.sshHostKey.privateKey },
      deployKey: { privateKey: ssh.deployKey.privateKey },
      ...tokens,
    };
  } else {
    plain = { format: 'edgeforge-site-secrets/1', id, generation };
  }
  const sealed = await ctx.pool.run('sealBundle', { plain, pgpKeys: { sops: { name: uidName, email: uidEmail } }, date: ctx.keyDate, recipients });
  const sops = pgpMaterial(sealed.pgp.sops);
  const base = {
    id,
    generation,
    created: new Date().toISOString(),
    encryptedTo: ctx.admins.fingerprints(),
    sops: { fingerprint: sops.fingerprint, publicKeyArmored: sops.publicKeyArmored, created: sops.created },
    history,
  };
  // private file first; public.json is the commit point (a run killed in between leaves an orphan private
  // file of an uncommitted generation, which the next run overwrites)
  await writeFileAtomic(ctx.layout.privateFile(edir, generation), sealed.armored, { mode: 0o600 });
  const record: AnyRecord =
    kind === 'device'
      ? {
          format: 'edgeforge-device-keys/1',
          ...base,
          sshHostKey: { publicKey: ssh!.sshHostKey.publicKey, fingerprint: ssh!.sshHostKey.fingerprint },
          deployKey: { publicKey: ssh!.deployKey.publicKey, fingerprint: ssh!.deployKey.fingerprint },
        }
      : { format: 'edgeforge-site-keys/1', ...base };
  await writeFileAtomic(ctx.layout.publicFile(edir), json(record), { mode: 0o644 });
  if (kind === 'site') return { kind: 'site', id, generation, sops };
  return { kind: 'device', id, generation, ...ssh!, ...tokens!, sops };
}

/** Decrypt and cross-check one generation of a device/site against its public record. */
export async function loadIdentity(ctx: StoreContext, kind: EntityKind, id: string, record: AnyRecord, generation: number): Promise<DeviceIdentity | SiteIdentity> {
  const file = ctx.layout.privateFile(entityDir(ctx.layout, kind, id), generation);
  const bundle = JSON.parse(await ctx.admins.decrypt(file)) as Record<string, any>;
  const where = `${file}`;
  if (bundle.id !== id || bundle.generation !== generation) {
    throw new KeysError(`${where}: holds ${bundle.id} generation ${bundle.generation}, expected ${id} generation ${generation}`, 'state');
  }
  const expected: Record<string, string> | undefined = generation === record.generation ? fingerprintsOf(record) : record.history.find((h) => h.generation === generation)?.fingerprints;
  const sops = pgpMaterial(bundle.sops);
  const check = (what: string, got: string) => {
    if (expected && expected[what] !== undefined && expected[what] !== got) {
      throw new KeysError(`${where}: ${what} fingerprint ${got} does not match public.json (${expected[what]}); keys/ is inconsistent or was tampered with`, 'state');
    }
  };
  check('sops', sops.fingerprint);
  if (kind === 'site') return { kind: 'site', id, generation, sops };
  const sshFrom = (pem: string): SshKeyPair => {
    // parse checks the structure (check words, pub == second half of the private key); the seed/pub
    // pairing itself was checked when the key was generated, and deriving it again costs ~0.5 ms per key
    let p: ReturnType<typeof parseSshPrivateKey>;
    try {
      p = parseSshPrivateKey(pem);
    } catch (err) {
      throw new KeysError(`${where}: stored SSH private key is corrupt: ${(err as Error).message}`, 'state');
    }
    return { publicKey: `ssh-ed25519 ${p.publicBlob.toString('base64')}${p.comment ? ' ' + p.comment : ''}`, privateKey: pem, fingerprint: fingerprintOfBlob(p.publicBlob) };
  };
  const sshHostKey = sshFrom(bundle.sshHostKey.privateKey);
  const deployKey = sshFrom(bundle.deployKey.privateKey);
  check('sshHostKey', sshHostKey.fingerprint);
  check('deployKey', deployKey.fingerprint);
  return {
    kind: 'device',
    id,
    generation,
    sshHostKey,
    deployKey,
    k3sToken: bundle.k3sToken,
    agentToken: bundle.agentToken,
    luksRecovery: bundle.luksRecovery,
    sops,
  };
}

/** One generation of a device/site (default: the current one); throws if it does not exist. */
export async function loadOne(ctx: StoreContext, kind: EntityKind, id: string, generation?: number) {
  const rec = await readRecord(ctx.layout, kind, id);
  if (!rec) throw new KeysError(`no keys for ${kind} "${id}" in ${ctx.dir}/ yet (a build creates them)`);
  const gen = generation ?? rec.generation;
  if (gen !== rec.generation && !rec.history.some((h) => h.generation === gen)) {
    throw new KeysError(`${kind} "${id}" has no generation ${gen} (current ${rec.generation}, history ${rec.history.map((h) => h.generation).join(', ') || 'none'})`);
  }
  return loadIdentity(ctx, kind, id, rec, gen);
}
