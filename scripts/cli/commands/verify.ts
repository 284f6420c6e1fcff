// verify OUT — check a build: the manifest signature against the PINNED build key, and every artifact's size and sha256.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { command } from '../command.ts';
import { UserError } from '../../util/errors.ts';
import { keysErrors } from '../keys-errors.ts';
import { verifyBuild } from '../../keys/verify.ts';

export const verify = command('verify', 'check a build: manifest signature (pinned key) and every artifact hash', {
  usage: 'verify OUT [--fingerprint FPR]',
  common: ['keys', 'json'],
  positionals: { min: 1, max: 1, names: 'OUT' },
  description: `The signature must be by the build key whose fingerprint is pinned: --fingerprint, else KEYS/build/signing-key.fingerprint.
OUT/signing-key.asc is only a convenience copy and is never trusted on its own. A file the manifest records as sparse
(seed.img) is checked by the sha256 of its data ranges and by reading its holes as zeros (never hashing them).
Exit 0 when everything matches, 1 when
anything does not (each problem is listed), 2 when there is nothing to pin or OUT is not a directory.`,
  options: { fingerprint: { type: 'string', value: 'FPR', description: 'the build key fingerprint to pin (40 hex digits; spaces allowed)' } },
  examples: ['edgeforge verify images/out', 'edgeforge verify ./artifacts --fingerprint "E8D5 464F B6E7 0009 3753 9068 59D9 549A BE3E B932"'],
  async run(ctx) {
    const out = path.resolve(ctx.io.cwd, ctx.positionals[0]);
    const st = await fs.stat(out).catch(() => undefined);
    if (!st?.isDirectory()) throw new UserError(`${ctx.positionals[0]} is not a directory (give the build output directory, e.g. images/out)`);
    const r = await keysErrors(() => verifyBuild(out, ctx.options.fingerprint as string | undefined, { keysDir: path.resolve(ctx.io.cwd, ctx.common.keys) }));
    if (ctx.common.json) ctx.io.out(JSON.stringify(r, null, 2));
    else {
      const lines = [
        r.signature.ok ? `signature: good, by ${r.signature.fingerprint} (pinned), made ${r.signature.signedAt}` : `signature: BAD — ${r.signature.error}`,
        `artifacts: ${r.artifacts} of ${r.devices} device(s), ${r.bytes} bytes hashed${r.holes ? `, ${r.holes} bytes of recorded holes checked to be zeros` : ''}`,
        ...r.problems.map((p) => `  problem: ${[p.device, p.path].filter(Boolean).join(' ')}: ${p.message}`),
        ...r.warnings.map((p) => `  warning: ${[p.device, p.path].filter(Boolean).join(' ')}: ${p.message}`),
        r.ok ? 'verified: OK' : `verified: FAILED (${r.problems.length} problem(s))`,
      ];
      ctx.io.out(lines.join('\n'));
    }
    return r.ok ? 0 : 1;
  },
});
