// The build's clock: SOURCE_DATE_EPOCH, else the time of the inventory's last commit (rebuilding a commit gives
// the same bytes), else now.
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UsageError } from '../../util/errors.ts';

export async function sourceDateEpoch(env: NodeJS.ProcessEnv, inventory: string): Promise<{ epoch: number; from: string }> {
  const s = env.SOURCE_DATE_EPOCH;
  if (s !== undefined && s !== '') {
    if (!/^\d{1,12}$/.test(s)) throw new UsageError(`SOURCE_DATE_EPOCH must be whole seconds since 1970, not "${s}"`);
    return { epoch: Number(s), from: 'SOURCE_DATE_EPOCH' };
  }
  try {
    const { stdout } = await promisify(execFile)('git', ['log', '-1', '--format=%ct', '--', path.basename(inventory)], { cwd: path.dirname(inventory) });
    if (/^\d+$/.test(stdout.trim())) return { epoch: Number(stdout.trim()), from: "the inventory's last git commit" };
  } catch {
    /* not in git */
  }
  return { epoch: Math.floor(Date.now() / 1000), from: 'the current time (set SOURCE_DATE_EPOCH for reproducible builds)' };
}
