// keys rotate — a new generation of a site or device identity, and what must be redeployed.
import path from 'node:path';
import { command } from '../command.ts';
import { keysDir } from '../keystore.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { keysErrors } from '../keys-errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { openKeyStore } from '../../keys/store.ts';
import { applySiteRotation, planSiteRotation, type SiteRotationPlan } from '../../lifecycle/rekey.ts';
import { loadGitopsPublicKeys } from '../../pipeline/inputs/public-keys.ts';
import { keystoreCrypto, readStatusCredential, rotateStatusCredential } from '../../keys/status-credentials.ts';

export const keysRotate = command('keys rotate', 'rotate a site or device identity and say what must be redeployed', {
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
          r.redeploy.push(
            `broker credential changed: regenerate the broker config (edgeforge status broker-config --to DIR) and reload the broker; the device reports again once it has the new bundle`,
          );
        }
        if (ctx.common.json) ctx.io.out(JSON.stringify(git ? { ...r, gitops: git } : r, null, 2));
        else
          ctx.io.out(
            [
              `${r.kind} ${r.id}: generation ${r.fromGeneration} -> ${r.toGeneration}`,
              ...r.changed.map((c) => `  ${c.what.padEnd(11)} ${c.old} -> ${c.new}`),
              ...(git
                ? [
                    '',
                    `${gitopsDir}:`,
                    ...git.reencrypted.map((p) => `  re-encrypted ${p}`),
                    ...git.siteKeyDelivered.filter((p) => p.endsWith('sops-gpg.yaml')).map((p) => `  new site key ${p}`),
                    '  .sops.yaml updated',
                  ]
                : []),
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
});
