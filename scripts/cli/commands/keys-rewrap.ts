// keys rewrap — re-encrypt every private key file to the admins now listed.
import { command } from '../command.ts';
import { withKeyStore } from '../keystore.ts';

export const keysRewrap = command('keys rewrap', 're-encrypt every private key file to the current admin recipients', {
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
});
