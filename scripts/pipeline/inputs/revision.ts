// Reading the inventory as it was at another revision, with git itself.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { realpathSync } from 'node:fs';
import { loadInventoryBytes } from '../../inventory/load.ts';
import type { Fleet } from '../../inventory/fleet.ts';
import { UserError } from '../../util/errors.ts';

const run = promisify(execFile);

export async function inventoryAtRevision(inventoryFile: string, rev: string): Promise<{ fleet?: Fleet; missing: boolean }> {
  const abs = realpathSync(path.resolve(inventoryFile));
  const dir = path.dirname(abs);
  let top: string;
  try {
    top = (await run('git', ['-C', dir, 'rev-parse', '--show-toplevel'])).stdout.trim();
  } catch {
    throw new UserError(`${inventoryFile} is not inside a git repository; --changed-since and diff read the inventory's history with git`);
  }
  const rel = path.relative(realpathSync(top), abs).split(path.sep).join('/');
  try {
    await run('git', ['-C', top, 'rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  } catch {
    throw new UserError(`git revision "${rev}" does not exist in ${top}`);
  }
  let bytes: Buffer;
  try {
    bytes = (await run('git', ['-C', top, 'show', `${rev}:${rel}`], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })).stdout as unknown as Buffer;
  } catch {
    return { missing: true }; // the inventory did not exist then: everything is new
  }
  return { fleet: loadInventoryBytes(bytes, `${rev}:${rel}`), missing: false };
}
