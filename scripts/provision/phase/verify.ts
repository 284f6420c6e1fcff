// Phase verify: the device's own record (<root>APPLIED_FILE, device/layout.ts, written last by the
// first-boot program) must name this build's bundle hash.
import { PhaseError } from '../errors.ts';
import { withTimeout } from '../session.ts';
import { APPLIED_FILE } from '../../device/layout.ts';
import { readSmall } from '../sftp.ts';
import { appliedHash, readAppliedAsRoot } from './preflight.ts';
import type { DeviceRun } from '../context.ts';

export async function verify(run: DeviceRun): Promise<string> {
  const f = run.facts!;
  const file = `${f.root}${APPLIED_FILE}`;
  let text: string;
  if (f.uid === 0 && !f.appliedNeedsSudo) {
    // root reads it over the SFTP channel already open: no process on the device
    const s = await run.session!.sftp();
    const read = readSmall(s, file).then(
      (buf) => buf.toString('utf8'),
      (err: Error) => {
        throw new PhaseError('verify', `the first-boot program left no record at ${file}: ${err.message}`, false);
      },
    );
    text = await withTimeout(read, run.timeouts.verify, 'verify');
  } else {
    text = await readAppliedAsRoot(run, 'verify', run.timeouts.verify);
  }
  const got = appliedHash(text);
  if (got !== run.bundle.hash) {
    throw new PhaseError(
      'verify',
      `${file} records bundle ${got || '(none)'}, but this build's bundle is ${run.bundle.hash}: the first-boot program did not finish recording; see the device log`,
      false,
    );
  }
  run.log.line(`verify: ${file} records bundle ${got}`);
  return got;
}
