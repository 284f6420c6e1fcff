// Phase verify: the device's own record (<root>/var/lib/edgeforge/applied.json, written last by the
// first-boot program) must name this build's bundle hash.
import { PhaseError } from '../errors.ts';
import { shq } from '../session.ts';
import { appliedHash, readAppliedAsRoot } from './preflight.ts';
import type { DeviceRun } from '../context.ts';

export async function verify(run: DeviceRun): Promise<string> {
  const f = run.facts!;
  const file = `${f.root}/var/lib/edgeforge/applied.json`;
  let text: string;
  if (f.uid === 0 && !f.appliedNeedsSudo) {
    const r = await run.session!.exec(`cat ${shq(file)}`, { timeoutMs: run.timeouts.verify });
    if (r.code !== 0) throw new PhaseError('verify', `the first-boot program left no record at ${file}: ${r.stderr.trim()}`, false);
    text = r.stdout;
  } else {
    text = await readAppliedAsRoot(run, 'verify', run.timeouts.verify);
  }
  const got = appliedHash(text);
  if (got !== run.bundle.hash) {
    throw new PhaseError('verify', `${file} records bundle ${got || '(none)'}, but this build's bundle is ${run.bundle.hash}: the first-boot program did not finish recording; see the device log`, false);
  }
  run.log.line(`verify: ${file} records bundle ${got}`);
  return got;
}
