// keys init — create the fleet's key store (admins pinned, build key, per-site and per-device keys).
import { command } from '../command.ts';
import { maybeFleet, progress, keysDir } from '../keystore.ts';
import { UserError } from '../../util/errors.ts';
import { keysErrors } from '../keys-errors.ts';
import { checkAdminPins, loadAdminRecipients } from '../../keys/admins.ts';
import { initKeys } from '../../keys/init.ts';
import { openKeyStore } from '../../keys/store.ts';
import { createMissingStatusCredentials, keystoreCrypto } from '../../keys/status-credentials.ts';

export const keysInit = command('keys init', 'create the key layout: admin recipients, build-signing key, per-site/per-device material', {
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
          if (fleet.status)
            statusCreated = (
              await createMissingStatusCredentials(
                dir,
                fleet.active.map((d) => d.id),
                keystoreCrypto(ks),
              )
            ).created;
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
});
