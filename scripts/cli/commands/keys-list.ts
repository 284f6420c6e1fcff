// keys list — every identity with fingerprints and status; public files only.
import { command } from '../command.ts';
import { withKeyStore, maybeFleet } from '../keystore.ts';

export const keysList = command('keys list', 'show every identity with fingerprints and status', {
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
      lines.push(
        `admins: ${listing.admins.map((a) => `${a.file} ${a.fingerprints.join(',')} ${a.userIds.join(', ')}${a.example ? '  [EXAMPLE — demo only]' : ''}`).join('\n        ') || 'none (run keys init)'}`,
      );
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
});
