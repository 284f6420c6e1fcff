// keys recover — the one command that prints a secret: a device's LUKS recovery passphrase, for an admin.
import path from 'node:path';
import { command } from '../command.ts';
import { withKeyStore, maybeFleet } from '../keystore.ts';
import { recoveryCommands } from '../../render/encryption/plan.ts';

export const keysRecover = command('keys recover', "decrypt a device's LUKS recovery passphrase for an admin", {
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
      ctx.io.out([...r.passphrases.map((p) => `generation ${p.generation}${p.current ? ' (current)' : ' (before a rotation)'}: ${p.passphrase}`), ...howTo].join('\n'));
      return 0;
    });
  },
});
