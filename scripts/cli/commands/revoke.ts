import path from 'node:path';
import { command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { revokeDevice, revokeProblem, RevokeRefused, type RevokeReason } from '../../lifecycle/revoke.ts';
import { closest } from '../../inventory/problems.ts';
import { hasBuild, rebuildAll } from './rebuild.ts';

export const revoke = command('revoke', "revoke a device's credentials and remove it from the fleet's GitOps state", {
  usage: 'revoke ID --reason stolen|lost|retired [--gitops DIR]',
  positionals: { min: 1, max: 1, names: 'ID (the device to revoke)' },
  description: `Marks the device in the inventory (comments and layout kept), rotates its site's SOPS key, and with --gitops
removes clusters/<region>/<site>/<device>/ from the GitOps working tree, re-encrypts the site's SOPS files to the
remaining recipients, writes each remaining Flux device of the site its new site key (sops-keys/, encrypted to that
device's own key only; its Flux applies it before it decrypts site secrets) and updates .sops.yaml.
Refused, with nothing changed (exit 2): an unknown or already revoked device, the server of a multi-node site while
agents still join it, a device whose keys are not in KEYS, a SOPS file it could read that the site key cannot open.
When OUT holds a build, the whole fleet is built into it again: the device's artifacts go, the manifest is re-signed. Writes a signed revocation record under KEYS/revocations/ saying what
was rotated and what to do elsewhere (deploy key on the Git host, tang keys, escrowed recovery key), with commands.`,
  options: {
    reason: { type: 'string', value: 'stolen|lost|retired', description: 'why the device leaves the fleet' },
    gitops: { type: 'string', value: 'DIR', description: 'the GitOps repository working tree to update' },
  },
  examples: ['edgeforge revoke ulsan1-line1-002 --reason stolen --gitops ../fleet-repo'],
  async run(ctx) {
    const id = ctx.positionals[0];
    const reason = ctx.options.reason as string | undefined;
    if (!reason || !['stolen', 'lost', 'retired'].includes(reason)) throw new UsageError('--reason must be stolen, lost or retired');
    const fleet = await loadFleet(ctx);
    const d = fleet.devices.find((x) => x.id === id);
    if (!d) {
      const guess = closest(
        id,
        fleet.devices.map((x) => x.id),
      );
      throw new UserError(`no device "${id}" in ${ctx.common.inventory}${guess ? `; did you mean "${guess}"?` : ''}. Nothing was changed.`);
    }
    const problem = revokeProblem(fleet, id, ctx.common.inventory);
    if (problem) throw new UserError(`${problem}. Nothing was changed.`);
    const epoch = ctx.io.env.EDGEFORGE_NOW ? Number(ctx.io.env.EDGEFORGE_NOW) : undefined;
    let result;
    try {
      result = await revokeDevice({
        inventoryFile: path.resolve(ctx.io.cwd, ctx.common.inventory),
        keysDir: path.resolve(ctx.io.cwd, ctx.common.keys),
        gitopsDir: ctx.options.gitops ? path.resolve(ctx.io.cwd, ctx.options.gitops as string) : undefined,
        id,
        reason: reason as RevokeReason,
        now: epoch ? new Date(epoch * 1000) : new Date(),
      });
    } catch (err) {
      if (err instanceof RevokeRefused) throw new UserError(`revoke ${id}: ${err.message}. Nothing was changed.`);
      throw new UserError(`revoke ${id}: ${(err as Error).message}`, 1);
    }
    const { record, recordFiles } = result;
    // --- fleet status: disable the device's broker credential; the operator regenerates the
    // broker config so the broker refuses it (scripts/keys/status-credentials.ts)
    const { disableStatusCredential } = await import('../../keys/status-credentials.ts');
    const brokerDisabled = await disableStatusCredential(path.resolve(ctx.io.cwd, ctx.common.keys), id, `revoked: ${reason}`);
    if (brokerDisabled) ctx.io.err(`broker credential of ${id} disabled: run \`edgeforge status broker-config --to DIR\` and reload the broker so it refuses the device`);
    // --- end fleet status
    // a build in OUT: build it again without the device, so its seed (secrets) goes and the signed manifest
    // lists every active device
    let rebuilt: number | undefined;
    if (await hasBuild(ctx)) rebuilt = await rebuildAll(ctx, { quiet: true });
    if (ctx.common.json) {
      ctx.io.out(
        JSON.stringify(
          {
            revoked: record.device.id,
            reason: record.reason,
            at: record.at,
            rotated: record.rotated,
            gitops: record.gitops,
            rebuilt: rebuilt === undefined ? null : { out: ctx.common.out, exitCode: rebuilt },
            records: recordFiles.map((f) => path.relative(ctx.io.cwd, f)),
            operatorActions: record.operatorActions,
          },
          null,
          2,
        ),
      );
    } else {
      const { recordText } = await import('../../lifecycle/revoke.ts');
      ctx.io.out(recordText(record));
      ctx.io.out(`record: ${recordFiles.map((f) => path.relative(ctx.io.cwd, f)).join(', ')}`);
      ctx.io.out(
        rebuilt === undefined
          ? `no build in ${ctx.common.out}: nothing to rebuild`
          : `${ctx.common.out}: rebuilt without ${record.device.id}; manifest signed (${rebuilt === 0 ? 'every device ok' : 'some devices failed, see above'})`,
      );
    }
    return rebuilt ?? 0;
  },
});
