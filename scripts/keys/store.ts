// The fleet keystore on disk (layout: keys/README.md, paths: layout.ts).
// Public parts in clear (public.json per device/site, the build key's public key); every private part
// OpenPGP-encrypted to all admin recipients, one file per device/site generation. Generating needs only the
// admins' PUBLIC keys; reading private material back (to render seeds, sign, recover) needs one admin's
// private key: EDGEFORGE_ADMIN_KEY, or the example admin key of a demo fleet.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import * as openpgp from '../util/openpgp.mjs';
import { sweepTempFiles, writeFileAtomic } from '../util/atomic.ts';
import { fingerprintOfBlob, generateSshKeyPair, parseSshPrivateKey, type SshKeyPair } from './ssh.ts';
import { agentToken, k3sToken, luksRecoveryPassphrase } from './secrets.ts';
import { PgpPool, defaultPoolSize } from './pool.ts';
import { decryptText } from './pgp-ops.mjs';
import { KeysLayout, checkDeviceId, checkSiteId } from './layout.ts';
import { withKeysLock } from './lock.ts';
import { normalizeFingerprint, signDetachedWith, verifyDetached, type VerifyResult } from './signing.ts';

/** OpenPGP keys are back-dated to this instant: a Raspberry Pi has no RTC and gpg refuses keys "created in the future". */
export const DEFAULT_KEY_DATE = '2020-01-01T00:00:00.000Z';

export class KeysError extends Error {
  /** 'usage': the operator must do something (exit 2); 'state': keys/ is inconsistent or tampered with */
  constructor(message: string, readonly kind: 'usage' | 'state' = 'usage') {
    super(message);
    this.name = 'KeysError';
  }
}

export interface PgpKeyMaterial {
  /** 40 hex digits, uppercase (what .sops.yaml `pgp:` and gpg use) */
  fingerprint: string;
  publicKeyArmored: string;
  /** armored, no passphrase: the `*.asc` entry of Flux's sops-gpg Secret */
  privateKeyArmored: string;
  /** the (back-dated) creation time inside the key */
  created: string;
}

export interface DeviceIdentity {
  kind: 'device';
  id: string;
  generation: number;
  /** cloud-init `ssh_keys: {ed25519_private, ed25519_public}`; provision and operators pin publicKey */
  sshHostKey: SshKeyPair;
  /** Flux's read-only Git deploy key (Secret `identity` / `identity.pub`); publicKey goes on the Git host */
  deployKey: SshKeyPair;
  /** K3s `token` of the cluster this device serves (a single-node server: its own cluster) */
  k3sToken: string;
  /** K3s `agent-token` this device issues when it is a server; its agents join with it */
  agentToken: string;
  /** LUKS2 recovery passphrase (its own keyslot), escrowed here for `keys recover` */
  luksRecovery: string;
  /** the device's SOPS key: its own GitOps secrets are encrypted to it */
  sops: PgpKeyMaterial;
}

export interface SiteIdentity {
  kind: 'site';
  /** "<region>/<site>" */
  id: string;
  generation: number;
  /** the site's SOPS key: secrets shared by every device of the site (see keys/README.md, "site secrets") */
  sops: PgpKeyMaterial;
}

interface PublicSsh {
  publicKey: string;
  fingerprint: string;
}
interface PublicPgp {
  fingerprint: string;
  publicKeyArmored: string;
  created: string;
}
export interface HistoryEntry {
  generation: number;
  created: string;
  retired: string;
  reason: string;
  fingerprints: Record<string, string>;
}
interface RecordBase {
  id: string;
  generation: number;
  /** wall-clock time this generation was made (metadata; never rendered into artifacts) */
  created: string;
  /** admin fingerprints the private file is encrypted to */
  encryptedTo: string[];
  sops: PublicPgp;
  history: HistoryEntry[];
}
interface DeviceRecord extends RecordBase {
  format: 'edgeforge-device-keys/1';
  sshHostKey: PublicSsh;
  deployKey: PublicSsh;
}
interface SiteRecord extends RecordBase {
  format: 'edgeforge-site-keys/1';
}
type AnyRecord = DeviceRecord | SiteRecord;

export interface AdminRecipient {
  /** path relative to keys/ */
  file: string;
  fingerprints: string[];
  userIds: string[];
  /** the generated example admin: demos only */
  example: boolean;
  armored: string;
}

export interface IdentitySummary {
  kind: 'device' | 'site';
  id: string;
  generation: number;
  created: string;
  /** ok | recipients-changed (admins changed since it was encrypted: run rewrap) | private-missing */
  status: 'ok' | 'recipients-changed' | 'private-missing';
  fingerprints: Record<string, string>;
  history: HistoryEntry[];
}

export interface KeyListing {
  admins: Omit<AdminRecipient, 'armored'>[];
  build: { fingerprint: string; status: 'ok' | 'recipients-changed' | 'missing' } | null;
  sites: IdentitySummary[];
  devices: IdentitySummary[];
}

export interface RotationResult {
  kind: 'device' | 'site';
  id: string;
  fromGeneration: number;
  toGeneration: number;
  changed: { what: string; old: string; new: string }[];
  /** what the operator/build must redeploy or do elsewhere, one instruction per line */
  redeploy: string[];
}

export interface RecoveryInfo {
  id: string;
  /** newest first: a disk not yet reflashed after a rotation still opens with an older generation's passphrase */
  passphrases: { generation: number; passphrase: string; current: boolean }[];
  /** generic command; the data partition path depends on the profile */
  command: string;
}

export interface EnsureResult<T> {
  identities: Map<string, T>;
  /** ids whose keys were generated by this call */
  created: string[];
}

export interface KeyStoreOptions {
  /** keys directory, default "keys" */
  dir?: string;
  /** armored admin private key file; default $EDGEFORGE_ADMIN_KEY, else the example admin key if present */
  adminKeyPath?: string;
  /** passphrase of that key; default $EDGEFORGE_ADMIN_KEY_PASSPHRASE */
  adminKeyPassphrase?: string;
  /** worker threads for OpenPGP work; default $EDGEFORGE_KEY_WORKERS or 2 */
  workers?: number;
  /** creation time of generated OpenPGP keys; default DEFAULT_KEY_DATE */
  keyDate?: string;
}

export interface Progress {
  onProgress?: (done: number, total: number) => void;
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

async function readJsonIfExists<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeysError(`${file}: ${(err as Error).message}`, 'state');
  }
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/** Admin recipients: every `*.asc` under keys/admins/ (one or more public keys each), sorted by file name. */
export async function loadAdminRecipients(dir: string): Promise<AdminRecipient[]> {
  const layout = new KeysLayout(dir);
  let names: string[];
  try {
    names = (await fs.readdir(layout.adminsDir)).filter((n) => n.endsWith('.asc')).sort();
  } catch {
    return [];
  }
  const out: AdminRecipient[] = [];
  for (const name of names) {
    const file = path.join(layout.adminsDir, name);
    const armored = await fs.readFile(file, 'utf8');
    let keys: openpgp.Key[];
    try {
      keys = await openpgp.readKeys({ armoredKeys: armored });
    } catch (err) {
      throw new KeysError(`${file}: not an armored OpenPGP public key (${(err as Error).message}); export one with: gpg --export --armor FINGERPRINT > ${file}`);
    }
    for (const k of keys) {
      if (k.isPrivate()) throw new KeysError(`${file}: holds a PRIVATE key; admin recipients must be public keys only (gpg --export --armor FINGERPRINT)`);
      try {
        await k.getEncryptionKey();
      } catch (err) {
        throw new KeysError(`${file}: key ${k.getFingerprint().toUpperCase()} has no usable encryption key (${(err as Error).message})`);
      }
    }
    out.push({
      file: path.relative(dir, file),
      fingerprints: keys.map((k) => k.getFingerprint().toUpperCase()),
      userIds: keys.flatMap((k) => k.getUserIDs()),
      example: name === path.basename(layout.exampleAdminPublic),
      armored,
    });
  }
  return out;
}

export interface InitResult {
  /** files created by this run (relative to keys/); empty on a second run */
  created: string[];
  /** loud messages the CLI must print (example admin key in use) */
  warnings: string[];
  admins: { file: string; fingerprints: string[]; example: boolean }[];
  buildKeyFingerprint: string;
}

export const EXAMPLE_ADMIN_WARNING =
  'EXAMPLE ADMIN KEY IN USE: keys/example-admin/admin.private.asc is an UNENCRYPTED admin private key generated for demos. ' +
  'Anyone who can read it can decrypt every fleet secret. For a real fleet: put your admins\' public keys in keys/admins/ ' +
  '(gpg --export --armor FPR > keys/admins/NAME.asc), delete keys/admins/example-admin.asc and keys/example-admin/, ' +
  'then re-encrypt (rewrap) and rotate the keys made while it was in use.';

/**
 * `keys init`: admin recipients (or, with exampleAdmin and none present, an example admin key pair),
 * the fleet's build-signing key, and the directories for per-site/per-device material. Idempotent.
 */
export async function initKeys(opts: { dir?: string; exampleAdmin?: boolean; fleet?: string; keyDate?: string } = {}): Promise<InitResult> {
  const dir = opts.dir ?? 'keys';
  const layout = new KeysLayout(dir);
  const keyDate = opts.keyDate ?? DEFAULT_KEY_DATE;
  const { generateV4Key, encryptText } = await import('./pgp-ops.mjs');
  return withKeysLock(dir, async () => {
    await sweepTempFiles(dir);
    const created: string[] = [];
    const warnings: string[] = [];
    for (const d of [layout.adminsDir, layout.devicesDir, layout.sitesDir, layout.buildDir]) await fs.mkdir(d, { recursive: true });
    let admins = await loadAdminRecipients(dir);
    if (admins.length === 0) {
      if (!opts.exampleAdmin) {
        throw new KeysError(
          `no admin recipients in ${layout.adminsDir}/: add your admins' OpenPGP public keys ` +
            `(gpg --export --armor FINGERPRINT > ${layout.adminsDir}/NAME.asc) and run keys init again, ` +
            `or use --example-admin for a demo fleet`,
        );
      }
      const k = await generateV4Key({ name: 'edgeforge EXAMPLE admin - demo only, not for production', email: 'example-admin@edgeforge.invalid', date: keyDate });
      await writeFileAtomic(layout.exampleAdminPrivate, k.privateKeyArmored, { mode: 0o600 });
      await writeFileAtomic(layout.exampleAdminWarning, EXAMPLE_ADMIN_WARNING + '\n', { mode: 0o644 });
      await writeFileAtomic(layout.exampleAdminPublic, k.publicKeyArmored, { mode: 0o644 });
      created.push(layout.exampleAdminPrivate, layout.exampleAdminWarning, layout.exampleAdminPublic);
      admins = await loadAdminRecipients(dir);
    }
    if (await exists(layout.exampleAdminPrivate)) warnings.push(EXAMPLE_ADMIN_WARNING);

    const havePub = await exists(layout.buildPublic);
    const havePriv = await exists(layout.buildPrivate);
    if (havePub !== havePriv) {
      throw new KeysError(`build signing key is half present (${havePub ? layout.buildPublic : layout.buildPrivate} without its pair); restore it from your key backup, or delete both to make a new build key (verifiers pinning the old fingerprint must then be updated)`, 'state');
    }
    let buildKeyFingerprint: string;
    if (!havePub) {
      const k = await generateV4Key({ name: `edgeforge build signing key${opts.fleet ? ` (${opts.fleet})` : ''}`, email: 'build-signing@edgeforge.invalid', date: keyDate });
      const armored = await encryptText({ text: k.privateKeyArmored, recipients: admins.map((a) => a.armored) });
      // private first, public (the commit point) last
      await writeFileAtomic(layout.buildPrivate, armored, { mode: 0o600 });
      await writeFileAtomic(layout.buildPublic, k.publicKeyArmored, { mode: 0o644 });
      await writeFileAtomic(layout.buildFingerprintFile, k.fingerprint + '\n', { mode: 0o644 });
      created.push(layout.buildPrivate, layout.buildPublic, layout.buildFingerprintFile);
      buildKeyFingerprint = k.fingerprint;
    } else {
      const pub = await openpgp.readKey({ armoredKey: await fs.readFile(layout.buildPublic, 'utf8') });
      buildKeyFingerprint = pub.getFingerprint().toUpperCase();
      if (!(await exists(layout.buildFingerprintFile))) {
        await writeFileAtomic(layout.buildFingerprintFile, buildKeyFingerprint + '\n', { mode: 0o644 });
        created.push(layout.buildFingerprintFile);
      }
    }
    return {
      created: created.map((f) => path.relative(dir, f)),
      warnings,
      admins: admins.map((a) => ({ file: a.file, fingerprints: a.fingerprints, example: a.example })),
      buildKeyFingerprint,
    };
  });
}

/** Open the keystore. Cheap: nothing is decrypted until private material is asked for. Call close() when done. */
export async function openKeyStore(opts: KeyStoreOptions = {}): Promise<KeyStore> {
  const store = new KeyStore(opts);
  await store.refreshAdmins();
  return store;
}

export class KeyStore {
  readonly dir: string;
  readonly layout: KeysLayout;
  private readonly keyDate: string;
  private readonly pool: PgpPool;
  private admins: AdminRecipient[] = [];
  private unlocked?: { armored: string; passphrase?: string; fingerprint: string; source: string };
  private buildKey?: openpgp.PrivateKey;

  constructor(private readonly opts: KeyStoreOptions = {}) {
    this.dir = opts.dir ?? 'keys';
    this.layout = new KeysLayout(this.dir);
    this.keyDate = opts.keyDate ?? DEFAULT_KEY_DATE;
    this.pool = new PgpPool(opts.workers ?? defaultPoolSize());
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  async refreshAdmins(): Promise<AdminRecipient[]> {
    this.admins = await loadAdminRecipients(this.dir);
    return this.admins;
  }

  /** Admin recipients (public keys), e.g. for the `pgp:` list of .sops.yaml so admins can always decrypt. */
  adminRecipients(): AdminRecipient[] {
    return this.admins;
  }

  private recipientsOrThrow(): string[] {
    if (this.admins.length === 0) {
      throw new KeysError(`no admin recipients in ${this.layout.adminsDir}/: run \`edgeforge keys init\` first (with --example-admin for a demo fleet)`);
    }
    return this.admins.map((a) => a.armored);
  }

  private adminFingerprints(): string[] {
    return this.admins.flatMap((a) => a.fingerprints).sort();
  }

  /** Find the admin private key (EDGEFORGE_ADMIN_KEY or the example admin) and check it is one of the recipients. */
  async unlock(): Promise<{ fingerprint: string; source: string }> {
    if (this.unlocked) return this.unlocked;
    const fromOpt = this.opts.adminKeyPath ?? process.env.EDGEFORGE_ADMIN_KEY;
    let file: string | undefined = fromOpt;
    if (!file && (await exists(this.layout.exampleAdminPrivate))) file = this.layout.exampleAdminPrivate;
    if (!file) {
      throw new KeysError(
        `decrypting fleet keys needs an admin private key: set EDGEFORGE_ADMIN_KEY to an armored OpenPGP private key file ` +
          `whose public key is in ${this.layout.adminsDir}/ (e.g. gpg --export-secret-keys --armor FPR > admin.asc; chmod 600 admin.asc; ` +
          `set EDGEFORGE_ADMIN_KEY_PASSPHRASE if it has a passphrase)`,
      );
    }
    let armored: string;
    try {
      armored = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new KeysError(`cannot read admin private key ${file}${fromOpt ? ' (from EDGEFORGE_ADMIN_KEY)' : ''}: ${(err as Error).message}`);
    }
    let key: openpgp.PrivateKey;
    try {
      key = await openpgp.readPrivateKey({ armoredKey: armored });
    } catch (err) {
      throw new KeysError(`${file} is not an armored OpenPGP private key: ${(err as Error).message}`);
    }
    const fpr = key.getFingerprint().toUpperCase();
    if (!this.adminFingerprints().includes(fpr)) {
      throw new KeysError(`admin key ${file} (${fpr}) is not among the admin recipients in ${this.layout.adminsDir}/ (${this.adminFingerprints().join(', ') || 'none'}); fleet keys are encrypted only to those`);
    }
    this.unlocked = { armored, passphrase: this.opts.adminKeyPassphrase ?? process.env.EDGEFORGE_ADMIN_KEY_PASSPHRASE, fingerprint: fpr, source: file };
    return { fingerprint: fpr, source: file };
  }

  private async decrypt(file: string): Promise<string> {
    await this.unlock();
    const armored = await fs.readFile(file, 'utf8').catch((err: Error) => {
      throw new KeysError(`${file}: ${err.message}`, 'state');
    });
    try {
      // inline, not in the pool: with the session key cached (pgp-ops) a file is symmetric work only, and
      // shipping it to a worker and back costs more than decrypting it here (measured: bench:keys)
      return await decryptText({ armored, privateKeyArmored: this.unlocked!.armored, passphrase: this.unlocked!.passphrase });
    } catch (err) {
      throw new KeysError(`cannot decrypt ${file} with admin key ${this.unlocked!.fingerprint} (${this.unlocked!.source}): ${(err as Error).message}. Was it encrypted before this admin was added? Another admin must run rewrap.`, 'state');
    }
  }

  // ---------- devices and sites ----------

  private entityDir(kind: 'device' | 'site', id: string): string {
    return kind === 'device' ? this.layout.deviceDir(id) : this.layout.siteDir(id);
  }

  private async readRecord(kind: 'device' | 'site', id: string): Promise<AnyRecord | undefined> {
    const rec = await readJsonIfExists<AnyRecord>(this.layout.publicFile(this.entityDir(kind, id)));
    if (rec && (rec.id !== id || rec.format !== (kind === 'device' ? 'edgeforge-device-keys/1' : 'edgeforge-site-keys/1'))) {
      throw new KeysError(`${this.layout.publicFile(this.entityDir(kind, id))}: record is for ${rec.format} "${rec.id}", not ${kind} "${id}"`, 'state');
    }
    return rec;
  }

  /** Generate one generation's material, write its private file then public.json (the commit point). */
  private async generate(kind: 'device' | 'site', id: string, generation: number, history: HistoryEntry[]): Promise<DeviceIdentity | SiteIdentity> {
    const recipients = this.recipientsOrThrow();
    const edir = this.entityDir(kind, id);
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
    const sealed = await this.pool.run('sealBundle', { plain, pgpKeys: { sops: { name: uidName, email: uidEmail } }, date: this.keyDate, recipients });
    const sops = pgpMaterial(sealed.pgp.sops);
    const base = {
      id,
      generation,
      created: new Date().toISOString(),
      encryptedTo: this.adminFingerprints(),
      sops: { fingerprint: sops.fingerprint, publicKeyArmored: sops.publicKeyArmored, created: sops.created },
      history,
    };
    // private file first; public.json is the commit point (a run killed in between leaves an orphan private
    // file of an uncommitted generation, which the next run overwrites)
    await writeFileAtomic(this.layout.privateFile(edir, generation), sealed.armored, { mode: 0o600 });
    const record: AnyRecord =
      kind === 'device'
        ? {
            format: 'edgeforge-device-keys/1',
            ...base,
            sshHostKey: { publicKey: ssh!.sshHostKey.publicKey, fingerprint: ssh!.sshHostKey.fingerprint },
            deployKey: { publicKey: ssh!.deployKey.publicKey, fingerprint: ssh!.deployKey.fingerprint },
          }
        : { format: 'edgeforge-site-keys/1', ...base };
    await writeFileAtomic(this.layout.publicFile(edir), json(record), { mode: 0o644 });
    if (kind === 'site') return { kind: 'site', id, generation, sops };
    return { kind: 'device', id, generation, ...ssh!, ...tokens!, sops };
  }

  /** Decrypt and cross-check one generation of a device/site against its public record. */
  private async loadFrom(kind: 'device' | 'site', id: string, record: AnyRecord, generation: number): Promise<DeviceIdentity | SiteIdentity> {
    const file = this.layout.privateFile(this.entityDir(kind, id), generation);
    const bundle = JSON.parse(await this.decrypt(file)) as Record<string, any>;
    const where = `${file}`;
    if (bundle.id !== id || bundle.generation !== generation) {
      throw new KeysError(`${where}: holds ${bundle.id} generation ${bundle.generation}, expected ${id} generation ${generation}`, 'state');
    }
    const expected: Record<string, string> | undefined =
      generation === record.generation ? fingerprintsOf(record) : record.history.find((h) => h.generation === generation)?.fingerprints;
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

  private async ensure<T extends DeviceIdentity | SiteIdentity>(kind: 'device' | 'site', ids: string[], p: Progress): Promise<EnsureResult<T>> {
    const unique = [...new Set(ids)];
    for (const id of unique) (kind === 'device' ? checkDeviceId : checkSiteId)(id);
    const identities = new Map<string, T>();
    const created: string[] = [];
    const limit = pLimit(16);
    let done = 0;
    const tick = () => p.onProgress?.(++done, unique.length);
    const records = await Promise.all(unique.map((id) => limit(() => this.readRecord(kind, id))));
    const missing = unique.filter((_, i) => !records[i]);
    if (missing.length > 0) this.recipientsOrThrow();
    if (unique.length > missing.length) await this.unlock(); // fail fast, before generating anything
    const loadExisting = unique
      .map((id, i) => [id, records[i]] as const)
      .filter(([, r]) => r)
      .map(([id, rec]) =>
        limit(async () => {
          identities.set(id, (await this.loadFrom(kind, id, rec!, rec!.generation)) as T);
          tick();
        }),
      );
    const generateMissing = async () => {
      if (missing.length === 0) return;
      await withKeysLock(this.dir, async () => {
        await sweepTempFiles(this.dir); // temp files of a killed run (only lock holders write, so none are live)
        await Promise.all(
          missing.map((id) =>
            limit(async () => {
              const again = await this.readRecord(kind, id); // another run may have made it meanwhile
              const ident = again ? await this.loadFrom(kind, id, again, again.generation) : await this.generate(kind, id, 1, []);
              if (!again) created.push(id);
              identities.set(id, ident as T);
              tick();
            }),
          ),
        );
      });
    };
    await Promise.all([...loadExisting, generateMissing()]);
    // keep the caller's order
    const ordered = new Map<string, T>();
    for (const id of unique) ordered.set(id, identities.get(id)!);
    created.sort((a, b) => unique.indexOf(a) - unique.indexOf(b));
    return { identities: ordered, created };
  }

  /** Load each device's identity, generating (and storing, encrypted) the ones that do not exist yet. */
  ensureDeviceIdentities(ids: string[], p: Progress = {}): Promise<EnsureResult<DeviceIdentity>> {
    return this.ensure<DeviceIdentity>('device', ids, p);
  }

  /** Same for sites ("<region>/<site>"): the site's shared SOPS key. */
  ensureSiteIdentities(siteIds: string[], p: Progress = {}): Promise<EnsureResult<SiteIdentity>> {
    return this.ensure<SiteIdentity>('site', siteIds, p);
  }

  /** One device's identity; `generation` picks an older one from its history. Throws if it does not exist. */
  async loadDeviceIdentity(id: string, generation?: number): Promise<DeviceIdentity> {
    return (await this.loadOne('device', id, generation)) as DeviceIdentity;
  }

  async loadSiteIdentity(siteId: string, generation?: number): Promise<SiteIdentity> {
    return (await this.loadOne('site', siteId, generation)) as SiteIdentity;
  }

  private async loadOne(kind: 'device' | 'site', id: string, generation?: number) {
    const rec = await this.readRecord(kind, id);
    if (!rec) throw new KeysError(`no keys for ${kind} "${id}" in ${this.dir}/ yet (a build creates them)`);
    const gen = generation ?? rec.generation;
    if (gen !== rec.generation && !rec.history.some((h) => h.generation === gen)) {
      throw new KeysError(`${kind} "${id}" has no generation ${gen} (current ${rec.generation}, history ${rec.history.map((h) => h.generation).join(', ') || 'none'})`);
    }
    return this.loadFrom(kind, id, rec, gen);
  }

  private async rotate(kind: 'device' | 'site', id: string, reason: string): Promise<RotationResult> {
    (kind === 'device' ? checkDeviceId : checkSiteId)(id);
    return withKeysLock(this.dir, async () => {
      await sweepTempFiles(this.entityDir(kind, id));
      const rec = await this.readRecord(kind, id);
      if (!rec) throw new KeysError(`no keys for ${kind} "${id}" in ${this.dir}/ to rotate (a build creates them; check the id)`);
      const old = fingerprintsOf(rec);
      const entry: HistoryEntry = { generation: rec.generation, created: rec.created, retired: new Date().toISOString(), reason, fingerprints: old };
      const next = (await this.generate(kind, id, rec.generation + 1, [entry, ...rec.history])) as DeviceIdentity | SiteIdentity;
      const nrec = (await this.readRecord(kind, id))!;
      const now = fingerprintsOf(nrec);
      const changed = Object.keys(now).map((what) => ({ what, old: old[what], new: now[what] }));
      return { kind, id, fromGeneration: rec.generation, toGeneration: next.generation, changed, redeploy: redeployText(kind, id, old, now) };
    });
  }

  /** New keys for a device (old generation kept for recovery); says what must be redeployed. */
  rotateDevice(id: string, opts: { reason?: string } = {}): Promise<RotationResult> {
    return this.rotate('device', id, opts.reason ?? 'rotate');
  }

  /** New site SOPS key (revoke of a device at the site calls this); says what must be re-encrypted/redeployed. */
  rotateSite(siteId: string, opts: { reason?: string } = {}): Promise<RotationResult> {
    return this.rotate('site', siteId, opts.reason ?? 'rotate');
  }

  /** Every identity with fingerprints and status. Reads public files only: needs no admin key. */
  async listIdentities(): Promise<KeyListing> {
    const fprs = this.adminFingerprints();
    const summarize = async (kind: 'device' | 'site', id: string): Promise<IdentitySummary | undefined> => {
      const rec = await this.readRecord(kind, id);
      if (!rec) return undefined;
      const havePriv = await exists(this.layout.privateFile(this.entityDir(kind, id), rec.generation));
      const status = !havePriv ? 'private-missing' : sameSet(rec.encryptedTo, fprs) ? 'ok' : 'recipients-changed';
      return { kind, id, generation: rec.generation, created: rec.created, status, fingerprints: fingerprintsOf(rec), history: rec.history };
    };
    const deviceIds = (await fs.readdir(this.layout.devicesDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
    const siteIds: string[] = [];
    for (const region of (await fs.readdir(this.layout.sitesDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort()) {
      for (const site of (await fs.readdir(path.join(this.layout.sitesDir, region)).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort()) siteIds.push(`${region}/${site}`);
    }
    const limit = pLimit(32);
    const devices = (await Promise.all(deviceIds.map((id) => limit(() => summarize('device', id))))).filter((x): x is IdentitySummary => !!x);
    const sites = (await Promise.all(siteIds.map((id) => limit(() => summarize('site', id))))).filter((x): x is IdentitySummary => !!x);
    let build: KeyListing['build'] = null;
    if (await exists(this.layout.buildPublic)) {
      build = { fingerprint: await this.buildKeyFingerprint(), status: (await exists(this.layout.buildPrivate)) ? 'ok' : 'missing' };
    }
    return { admins: this.admins.map(({ armored: _a, ...rest }) => rest), build, sites, devices };
  }

  /** `keys recover ID`: the device's LUKS recovery passphrase(s), newest first. Needs the admin key. */
  async recoverDevice(id: string): Promise<RecoveryInfo> {
    const rec = await this.readRecord('device', checkDeviceId(id));
    if (!rec) throw new KeysError(`no keys for device "${id}" in ${this.dir}/ (check the id; keys list shows them)`);
    const gens = [rec.generation, ...rec.history.map((h) => h.generation)];
    const passphrases: RecoveryInfo['passphrases'] = [];
    for (const g of gens) {
      const ident = (await this.loadFrom('device', id, rec, g)) as DeviceIdentity;
      passphrases.push({ generation: g, passphrase: ident.luksRecovery, current: g === rec.generation });
    }
    return {
      id,
      passphrases,
      // mapper name and mount point as the first-boot program sets them up (render/encryption)
      command:
        'cryptsetup open --type luks2 DATA_PARTITION edgeforge-data && mount /dev/mapper/edgeforge-data /var/lib/edgeforge-data' +
        '   # type the passphrase; DATA_PARTITION: the LUKS data partition, found with: blkid -t TYPE=crypto_LUKS -o device',
    };
  }

  /**
   * Re-encrypt every private file to the current admin recipients (after adding or removing an admin).
   * Removing an admin this way does not un-leak what they could already read: rotate too.
   */
  async rewrapAll(): Promise<{ files: number }> {
    const recipients = this.recipientsOrThrow();
    await this.unlock();
    return withKeysLock(this.dir, async () => {
      const listing = await this.listIdentities();
      const files: string[] = [];
      if (listing.build) files.push(this.layout.buildPrivate);
      const recs: [string, AnyRecord][] = [];
      for (const s of [...listing.devices, ...listing.sites]) {
        const rec = (await this.readRecord(s.kind, s.id))!;
        const edir = this.entityDir(s.kind, s.id);
        for (const g of [rec.generation, ...rec.history.map((h) => h.generation)]) {
          const f = this.layout.privateFile(edir, g);
          if (await exists(f)) files.push(f);
        }
        recs.push([this.layout.publicFile(edir), rec]);
      }
      const limit = pLimit(16);
      await Promise.all(
        files.map((f) =>
          limit(async () => {
            const text = await this.decrypt(f);
            await writeFileAtomic(f, await this.pool.run('encryptText', { text, recipients }), { mode: 0o600 });
          }),
        ),
      );
      for (const [file, rec] of recs) await writeFileAtomic(file, json({ ...rec, encryptedTo: this.adminFingerprints() }), { mode: 0o644 });
      return { files: files.length };
    });
  }

  // ---------- build signing ----------

  async buildPublicKeyArmored(): Promise<string> {
    try {
      return await fs.readFile(this.layout.buildPublic, 'utf8');
    } catch {
      throw new KeysError(`no build signing key in ${this.layout.buildDir}/: run \`edgeforge keys init\``);
    }
  }

  async buildKeyFingerprint(): Promise<string> {
    const key = await openpgp.readKey({ armoredKey: await this.buildPublicKeyArmored() });
    return key.getFingerprint().toUpperCase();
  }

  /** Armored detached signature (manifest.json.asc). `sourceDateEpoch` (seconds) makes it reproducible. */
  async signDetached(data: Uint8Array, opts: { sourceDateEpoch?: number } = {}): Promise<string> {
    if (!this.buildKey) {
      const armored = await this.decrypt(this.layout.buildPrivate);
      const key = await openpgp.readPrivateKey({ armoredKey: armored });
      if (key.getFingerprint().toUpperCase() !== (await this.buildKeyFingerprint())) {
        throw new KeysError(`${this.layout.buildPrivate} does not hold the key in ${this.layout.buildPublic}`, 'state');
      }
      this.buildKey = key;
    }
    const date = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000) : undefined;
    return signDetachedWith(this.buildKey, data, date);
  }

  /** Verify with the build key in keys/, pinned to `pinnedFingerprint` (default: keys/build/signing-key.fingerprint). */
  async verifyDetached(data: Uint8Array, signatureArmored: string, pinnedFingerprint?: string): Promise<VerifyResult> {
    const pinned = pinnedFingerprint ?? (await readPinnedFingerprint(this.dir));
    return verifyDetached(data, signatureArmored, pinned, await this.buildPublicKeyArmored());
  }
}

/** The build key fingerprint to pin, from keys/build/signing-key.fingerprint. */
export async function readPinnedFingerprint(dir = 'keys'): Promise<string> {
  const layout = new KeysLayout(dir);
  try {
    return normalizeFingerprint(await fs.readFile(layout.buildFingerprintFile, 'utf8'));
  } catch {
    throw new KeysError(`no pinned build key fingerprint at ${layout.buildFingerprintFile}: pass the fingerprint explicitly or run \`edgeforge keys init\``);
  }
}

/** Fixed field order, so a freshly generated identity and a reloaded one are the same value. */
function pgpMaterial(k: PgpKeyMaterial): PgpKeyMaterial {
  return { fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored, privateKeyArmored: k.privateKeyArmored, created: k.created };
}

function fingerprintsOf(rec: AnyRecord): Record<string, string> {
  const out: Record<string, string> = {};
  if (rec.format === 'edgeforge-device-keys/1') {
    out.sshHostKey = rec.sshHostKey.fingerprint;
    out.deployKey = rec.deployKey.fingerprint;
  }
  out.sops = rec.sops.fingerprint;
  return out;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

function redeployText(kind: 'device' | 'site', id: string, old: Record<string, string>, now: Record<string, string>): string[] {
  if (kind === 'site') {
    return [
      `re-encrypt the site's SOPS files in the GitOps repo to the new site key ${now.sops} (replace ${old.sops} in .sops.yaml, then sops updatekeys)`,
      `rebuild and redeploy every device of site ${id} (edgeforge build, then flash or provision) so each carries the new site key`,
      `once all devices run the new key, the old key ${old.sops} decrypts nothing new; it stays in keys/ history only for audit`,
    ];
  }
  return [
    `rebuild device ${id} (edgeforge build --only ${id}) and redeploy it: reflash, or edgeforge provision --only ${id}`,
    `update the pinned host key of ${id} in the inventory (ssh.hostKey): ${old.sshHostKey} -> ${now.sshHostKey}`,
    `on the Git host: delete deploy key ${old.deployKey} and add the new one (${now.deployKey}) read-only`,
    `re-encrypt ${id}'s SOPS files to ${now.sops} (replace ${old.sops} in .sops.yaml, then sops updatekeys)`,
    `K3s token changed: on a running cluster run k3s token rotate, or reinstall the node`,
    `the LUKS recovery keyslot on the disk keeps the old passphrase until the device is reprovisioned; keys recover ${id} prints every generation`,
  ];
}

/**
 * Compare the inventory's `admins` list with keys/admins/: a pinned fingerprint that no key file holds is an
 * error (secrets would be encrypted to the wrong people); an unpinned admin whose email no key carries, or a
 * key file nobody in the inventory names, is a warning.
 */
export function checkAdminPins(
  recipients: Pick<AdminRecipient, 'file' | 'fingerprints' | 'userIds' | 'example'>[],
  expected: { name: string; email: string; fingerprint?: string }[],
): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const all = recipients.flatMap((r) => r.fingerprints);
  const used = new Set<string>();
  for (const a of expected) {
    if (a.fingerprint) {
      const r = recipients.find((x) => x.fingerprints.includes(a.fingerprint!.toUpperCase()));
      if (!r) errors.push(`admin ${a.name} <${a.email}> is pinned to ${a.fingerprint}, but no key in keys/admins/ has that fingerprint (have: ${all.join(', ') || 'none'})`);
      else used.add(r.file);
    } else {
      const r = recipients.find((x) => x.userIds.some((u) => u.toLowerCase().includes(`<${a.email.toLowerCase()}>`)));
      if (!r) warnings.push(`admin ${a.name} <${a.email}> has no key in keys/admins/ (add it: gpg --export --armor ${a.email} > keys/admins/NAME.asc) — pin it with fingerprint: in the inventory`);
      else used.add(r.file);
    }
  }
  for (const r of recipients) if (!used.has(r.file) && !r.example) warnings.push(`${r.file} (${r.userIds.join(', ')}) is an admin recipient that the inventory's admins list does not name`);
  return { errors, warnings };
}
