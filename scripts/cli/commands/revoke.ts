import path from 'node:path';
import { type Command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { revokeDevice, type RevokeReason } from '../../lifecycle/revoke.ts';
import { closest } from '../../inventory/problems.ts';

export const revoke: Command = {
  name: 'revoke',
  summary: "revoke a device's credentials and remove it from the fleet's GitOps state",
  usage: 'revoke ID --reason stolen|lost|retired [--gitops DIR]',
  positionals: { min: 1, max: 1, names: 'ID (the device to revoke)' },
  description: `Marks the device in the inventory (comments and layout kept), rotates its site's SOPS key, and with --gitops
removes clusters/<region>/<site>/<device>/ from the GitOps working tree, re-encrypts the site's SOPS files to the
remaining recipients and updates .sops.yaml. Writes a signed revocation record under KEYS/revocations/ saying what
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
      const guess = closest(id, fleet.devices.map((x) => x.id));
      throw new UserError(`no device "${id}" in ${ctx.common.inventory}${guess ? `; did you mean "${guess}"?` : ''}`);
    }
    if (d.status !== 'active') throw new UserError(`device "${id}" is already ${d.status}; nothing to revoke`);
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
      throw new UserError(`revoke ${id}: ${(err as Error).message}`);
    }
    const { record, recordFiles } = result;
    if (ctx.common.json) {
      ctx.io.out(JSON.stringify({ revoked: record.device.id, reason: record.reason, at: record.at, rotated: record.rotated, gitops: record.gitops, records: recordFiles.map((f) => path.relative(ctx.io.cwd, f)), operatorActions: record.operatorActions }, null, 2));
    } else {
      const { recordText } = await import('../../lifecycle/revoke.ts');
      ctx.io.out(recordText(record));
      ctx.io.out(`record: ${recordFiles.map((f) => path.relative(ctx.io.cwd, f)).join(', ')}`);
    }
    return 0;
  },
};
