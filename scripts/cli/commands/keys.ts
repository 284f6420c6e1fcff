// keys init | list | rotate | recover — a thin layer over scripts/keys/.
// Secrets are never printed except by `keys recover`, whose whole point is to show one to an admin.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { type Command, type RunContext } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { keysErrors } from '../keys-errors.ts';
import { recoveryCommands } from '../../render/encryption/plan.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { checkAdminPins, loadAdminRecipients } from '../../keys/admins.ts';
import { initKeys } from '../../keys/init.ts';
import { openKeyStore, type KeyStore } from '../../keys/store.ts';
import type { Fleet } from '../../inventory/fleet.ts';
import { applySiteRotation, planSiteRotation, type SiteRotationPlan } from '../../lifecycle/rekey.ts';
import { loadGitopsPublicKeys } from '../../pipeline/inputs/public-keys.ts';
import { statusConfig } from '../../inventory/status.ts';
import { createMissingStatusCredentials, keystoreCrypto, readStatusCredential, rotateStatusCredential } from '../../keys/status-credentials.ts';

const keysDir = (ctx: RunContext) => path.resolve(ctx.io.cwd, ctx.common.keys);

/** Open the keystore for one command (KeysError → exit 2, as keysErrors), and close it whatever happens. */
async function withKeyStore<T>(ctx: RunContext, opts: { workers?: number }, fn: (ks: KeyStore) => Promise<T>): Promise<T> {
  return keysErrors(async () => {
    const ks = await openKeyStore({ dir: keysDir(ctx), ...opts });
    try {
      return await fn(ks);
    } finally {
      await ks.close();
    }
  });
}

/** The inventory when there is one; a missing default inventory is fine for key commands, an invalid one is not. */
async function maybeFleet(ctx: RunContext): Promise<Fleet | undefined> {
  try {
    await fs.access(path.resolve(ctx.io.cwd, ctx.common.inventory));
  } catch {
    return undefined;
  }
  return loadFleet(ctx);
}

function progress(ctx: RunContext, what: string) {
  let last = 0;
  return (done: number, total: number) => {
    if (ctx.common.json) return;
    const now = Date.now();
    if (done === total || now - last > 1000) {
      last = now;
      ctx.io.err(`${what}: ${done}/${total}`);
    }
  };
}

export const keysInit: Command = {
  name: 'keys init',
  summary: 'create the key layout: admin recipients, build-signing key, per-site/per-device material',
  usage: 'keys init [--example-admin] [--layout-only]',
  common: ['inventory', 'keys', 'json'],
  description: `Admin recipients are the OpenPGP public keys in KEYS/admins/*.asc; every private part edgeforge makes is
encrypted to all of them. --example-admin generates an example admin key pair for a demo fleet (its private key is
kept UNENCRYPTED under KEYS/example-admin/ — never use it for a real fleet). Then the build-signing key, and the
keys of every active device and site in the inventory (--layout-only skips those; build makes missing ones anyway).
Idempotent: existing keys are kept.`,
  options: {
    'example-admin': { type: 'boolean', description: 'no admin keys yet: generate an example admin (demo fleets only)' },
    'layout-only': { type: 'boolean', description: 'do not generate device and site keys now' },
  },
  examples: ['edgeforge keys init --example-admin -i inventory/example.yaml', 'gpg --export --armor ops@acme.example > keys/admins/ops.asc && edgeforge keys init'],
  async run(ctx) {
    return keysErrors(async () => {
      const fleet = await maybeFleet(ctx);
      const dir = keysDir(ctx);
      // a pinned admin fingerprint that keys/admins/ lacks is refused before anything is written
      const before = await loadAdminRecipients(dir);
      if (fleet && before.length) {
        const pre = checkAdminPins(before, fleet.admins);
        if (pre.errors.length) throw new UserError(pre.errors.join('\n'), 2);
      }
      const init = await initKeys({ dir, exampleAdmin: Boolean(ctx.options['example-admin']), fleet: fleet?.name });
      for (const w of init.warnings) ctx.io.err(`\n!!! ${w}\n`);
      const pins = fleet ? checkAdminPins(await loadAdminRecipients(dir), fleet.admins) : { errors: [], warnings: [] };
      for (const w of [...pins.errors, ...pins.warnings]) ctx.io.err(`warning: ${w}`);
      let devicesCreated: string[] = [];
      let sitesCreated: string[] = [];
      let statusCreated: string[] = [];
      if (fleet && !ctx.options['layout-only']) {
        const ks = await openKeyStore({ dir });
        try {
          // generation needs only the admins' public keys; existing identities are not decrypted here
          const listing = await ks.listIdentities();
          const listed = new Set(listing.devices.map((d) => d.id));
          const listedSites = new Set(listing.sites.map((s) => s.id));
          const missingDevices = fleet.active.map((d) => d.id).filter((id) => !listed.has(id));
          const missingSites = [...new Set(fleet.active.map((d) => d.siteId))].filter((id) => !listedSites.has(id));
          sitesCreated = (await ks.ensureSiteIdentities(missingSites)).created;
          devicesCreated = (await ks.ensureDeviceIdentities(missingDevices, { onProgress: progress(ctx, 'device keys') })).created;
          // fleet status: a broker credential per device (only public keys needed to create one)
          if (statusConfig(fleet)) statusCreated = (await createMissingStatusCredentials(dir, fleet.active.map((d) => d.id), keystoreCrypto(ks))).created;
        } finally {
          await ks.close();
        }
      }
      const result = {
        keys: ctx.common.keys,
        created: init.created,
        admins: init.admins,
        buildKeyFingerprint: init.buildKeyFingerprint,
        sitesCreated,
        devicesCreated: devicesCreated.length,
        statusCredentialsCreated: statusCreated.length,
        exampleAdmin: init.warnings.length > 0,
      };
      if (ctx.common.json) ctx.io.out(JSON.stringify(result, null, 2));
      else {
        ctx.io.out(
          [
            `${ctx.common.keys}/: ${init.created.length ? `created ${init.created.join(', ')}` : 'layout already present, nothing changed'}`,
            `admin recipients: ${init.admins.map((a) => `${a.file} (${a.fingerprints.join(', ')})${a.example ? ' EXAMPLE' : ''}`).join('; ')}`,
            `build signing key: ${init.buildKeyFingerprint}  (pin this in verifiers: ${ctx.common.keys}/build/signing-key.fingerprint)`,
            fleet && !ctx.options['layout-only'] ? `new keys: ${sitesCreated.length} site(s), ${devicesCreated.length} device(s)` : '',
            statusCreated.length ? `new broker credentials (fleet status): ${statusCreated.length} device(s); write the broker config: edgeforge status broker-config --to DIR` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        );
      }
      return 0;
    });
  },
};

export const keysList: Command = {
  name: 'keys list',
  summary: 'show every identity with fingerprints and status',
  usage: 'keys list',
  common: ['inventory', 'keys', 'json'],
  description: 'Reads public files only (no admin key needed). With an inventory, also shows devices that have no keys yet and keys of devices the inventory no longer lists or has revoked.',
  examples: ['edgeforge keys list', 'edgeforge keys list --json | jq ".devices[] | select(.status != \\"ok\\")"'],
  async run(ctx) {
    const fleet = await maybeFleet(ctx);
    return withKeyStore(ctx, { workers: 0 }, async (ks) => {
      const listing = await ks.listIdentities();
      const inv = new Map(fleet?.devices.map((d) => [d.id, d]) ?? []);
      const devices = listing.devices.map((d) => ({ ...d, inventory: fleet ? (inv.get(d.id)?.status ?? 'not in inventory') : undefined }));
      const have = new Set(listing.devices.map((d) => d.id));
      const missing = fleet ? fleet.active.filter((d) => !have.has(d.id)).map((d) => d.id) : [];
      if (ctx.common.json) {
        ctx.io.out(JSON.stringify({ ...listing, devices, missing }, null, 2));
        return 0;
      }
      const lines: string[] = [];
      lines.push(`admins: ${listing.admins.map((a) => `${a.file} ${a.fingerprints.join(',')} ${a.userIds.join(', ')}${a.example ? '  [EXAMPLE — demo only]' : ''}`).join('\n        ') || 'none (run keys init)'}`);
      lines.push(`build signing key: ${listing.build ? `${listing.build.fingerprint} (${listing.build.status})` : 'none (run keys init)'}`);
      lines.push('', `sites (${listing.sites.length}):`);
      for (const s of listing.sites) lines.push(`  ${s.id.padEnd(32)} g${s.generation}  ${s.status.padEnd(18)} sops ${s.fingerprints.sops}`);
      lines.push('', `devices (${devices.length}):`);
      for (const d of devices) {
        lines.push(
          `  ${d.id.padEnd(24)} g${d.generation}  ${d.status.padEnd(18)}${d.inventory ? ` ${d.inventory.padEnd(16)}` : ''} host ${d.fingerprints.sshHostKey}  deploy ${d.fingerprints.deployKey}  sops ${d.fingerprints.sops}`,
        );
      }
      if (missing.length) lines.push('', `active devices without keys yet (build or keys init makes them): ${missing.join(', ')}`);
      ctx.io.out(lines.join('\n'));
      return 0;
    });
  },
};

export const keysRotate: Command = {
  name: 'keys rotate',
  summary: 'rotate a site or device identity and say what must be redeployed',
  usage: 'keys rotate --site REGION/SITE [--gitops DIR] | --device ID [--reason TEXT]',
  common: ['keys', 'json', 'inventory'],
  description: `Makes a new generation of keys; the old one stays in keys/ history (its LUKS recovery passphrase opens disks not yet reflashed). Prints the old and new fingerprints and what to redeploy.
With --site and --gitops DIR the new site key also goes out through Git: the SOPS files the old site key could read are
re-encrypted to the new one, and every Flux device of the site gets clusters/<r>/<s>/<d>/sops-keys/sops-gpg.yaml (its
own key + the new site key, encrypted to its own key only), which its Flux applies before it decrypts anything else.
Everything is checked first: a file the old site key cannot open stops the run with nothing changed.`,
  options: {
    site: { type: 'string', value: 'REGION/SITE', description: "rotate the site's shared SOPS key" },
    gitops: { type: 'string', value: 'DIR', description: 'with --site: the GitOps working tree to deliver the new key through' },
    device: { type: 'string', value: 'ID', description: "rotate all of a device's keys and tokens" },
    reason: { type: 'string', value: 'TEXT', description: 'recorded in the key history' },
  },
  examples: ['edgeforge keys rotate --device ulsan1-line1-001', 'edgeforge keys rotate --site kr-south/ulsan-plant-1 --reason "device stolen"'],
  async run(ctx) {
    const site = ctx.options.site as string | undefined;
    const device = ctx.options.device as string | undefined;
    if (!site === !device) throw new UsageError('give exactly one of --site REGION/SITE or --device ID');
    const gitopsDir = ctx.options.gitops ? path.resolve(ctx.io.cwd, ctx.options.gitops as string) : undefined;
    if (gitopsDir && !site) throw new UsageError('--gitops goes with --site (a device rotation is redeployed with build + provision)');
    const fleet = gitopsDir ? await loadFleet(ctx) : undefined;
    if (fleet && site && !fleet.sites.some((s) => s.id === site)) throw new UserError(`no site "${site}" in ${ctx.common.inventory} (sites are REGION/SITE). Nothing was changed.`);
    return keysErrors(async () => {
      const ks = await openKeyStore({ dir: keysDir(ctx), workers: 0 });
      try {
        const reason = (ctx.options.reason as string | undefined) ?? 'manual rotation';
        let plan: SiteRotationPlan | undefined;
        if (gitopsDir && fleet) {
          try {
            await ks.unlock();
            plan = await planSiteRotation(ks, fleet, site!, gitopsDir);
          } catch (err) {
            throw new UserError(`keys rotate --site ${site}: ${(err as Error).message}. Nothing was changed.`);
          }
        }
        const r = device ? await ks.rotateDevice(device, { reason }) : await ks.rotateSite(site!, { reason });
        let git: { reencrypted: string[]; siteKeyDelivered: string[] } | undefined;
        if (plan && gitopsDir && fleet) {
          const newSite = await ks.loadSiteIdentity(site!);
          git = await applySiteRotation(plan, newSite.sops.privateKeyArmored, gitopsDir, fleet, await loadGitopsPublicKeys(keysDir(ctx), fleet), new Date());
          r.redeploy = [`commit and push ${path.relative(ctx.io.cwd, gitopsDir) || '.'}: every Flux device of ${site} applies its sops-keys/ file, then decrypts the re-encrypted site secrets`];
        }
        // fleet status: the device's broker credential rotates with its other keys (when it has one)
        if (device && (await readStatusCredential(keysDir(ctx), device))) {
          const sc = await rotateStatusCredential(keysDir(ctx), device, keystoreCrypto(ks), reason);
          r.changed.push({ what: 'broker', old: `status credential g${sc.from}`, new: `g${sc.to}` });
          r.redeploy.push(`broker credential changed: regenerate the broker config (edgeforge status broker-config --to DIR) and reload the broker; the device reports again once it has the new bundle`);
        }
        if (ctx.common.json) ctx.io.out(JSON.stringify(git ? { ...r, gitops: git } : r, null, 2));
        else
          ctx.io.out(
            [
              `${r.kind} ${r.id}: generation ${r.fromGeneration} -> ${r.toGeneration}`,
              ...r.changed.map((c) => `  ${c.what.padEnd(11)} ${c.old} -> ${c.new}`),
              ...(git ? ['', `${gitopsDir}:`, ...git.reencrypted.map((p) => `  re-encrypted ${p}`), ...git.siteKeyDelivered.filter((p) => p.endsWith('sops-gpg.yaml')).map((p) => `  new site key ${p}`), '  .sops.yaml updated'] : []),
              '',
              'now:',
              ...r.redeploy.map((l) => `  - ${l}`),
            ].join('\n'),
          );
        return 0;
      } finally {
        await ks.close();
      }
    });
  },
};

export const keysRecover: Command = {
  name: 'keys recover',
  summary: "decrypt a device's LUKS recovery passphrase for an admin",
  usage: 'keys recover ID',
  common: ['keys', 'inventory'],
  positionals: { min: 1, max: 1, names: 'ID' },
  description: `Needs an admin private key (EDGEFORGE_ADMIN_KEY=path to an armored OpenPGP private key; EDGEFORGE_ADMIN_KEY_PASSPHRASE
if it has one). Prints every generation's passphrase, newest first: a disk that was not reflashed after a rotation still
opens with the older one. There is no --json: the output is a secret meant for a person at a console.`,
  examples: ['EDGEFORGE_ADMIN_KEY=~/secrets/admin.asc edgeforge keys recover ulsan1-line1-001'],
  async run(ctx) {
    return withKeyStore(ctx, { workers: 0 }, async (ks) => {
      const r = await ks.recoverDevice(ctx.positionals[0]);
      // with the inventory, the exact commands for this device (its data volume label, mounts and K3s unit)
      const device = (await maybeFleet(ctx))?.devices.find((d) => d.id === r.id);
      const howTo = device ? ['', 'open the data volume:', ...recoveryCommands(device).map((l) => `  ${l}`)] : ['', `open the data volume: ${r.command}`];
      ctx.io.err(`recovery passphrase(s) for ${r.id} — treat as secret, do not paste into tickets or chat`);
      ctx.io.out(
        [
          ...r.passphrases.map((p) => `generation ${p.generation}${p.current ? ' (current)' : ' (before a rotation)'}: ${p.passphrase}`),
          ...howTo,
        ].join('\n'),
      );
      return 0;
    });
  },
};

export const keysRewrap: Command = {
  name: 'keys rewrap',
  summary: 're-encrypt every private key file to the current admin recipients',
  usage: 'keys rewrap',
  common: ['keys', 'json'],
  description: `After adding or removing a key in KEYS/admins/: decrypts every private file (needs an admin key that can read
them: EDGEFORGE_ADMIN_KEY) and encrypts it again to exactly the admins now listed. Removing an admin this way does not
un-leak what they could already read: rotate the keys too (keys rotate).`,
  examples: ['gpg --export --armor new-admin@acme.example > keys/admins/new-admin.asc && EDGEFORGE_ADMIN_KEY=~/admin.asc edgeforge keys rewrap'],
  async run(ctx) {
    return withKeyStore(ctx, {}, async (ks) => {
      const r = await ks.rewrapAll();
      const admins = ks.adminRecipients().map((a) => ({ file: a.file, fingerprints: a.fingerprints }));
      if (ctx.common.json) ctx.io.out(JSON.stringify({ files: r.files, admins }, null, 2));
      else ctx.io.out(`re-encrypted ${r.files} file(s) to ${admins.map((a) => `${a.file} (${a.fingerprints.join(', ')})`).join('; ')}`);
      return 0;
    });
  },
};

export const keysCommands: Command[] = [keysInit, keysList, keysRotate, keysRecover, keysRewrap];
