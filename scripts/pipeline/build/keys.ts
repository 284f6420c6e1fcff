// Phase keys: the secrets of every device to render, from the keystore (created on first use). Unchanged
// devices' keys are never decrypted. A failure fails every device still to render.
import type { BuildRun } from './context.ts';

export async function keys(run: BuildRun): Promise<void> {
  const { reporter } = run.o;
  try {
    let identities = run.toRender.length; // the sources count sites' identities too
    reporter.count?.('keys', 0, identities);
    run.secrets = await run.o.secrets.secretsFor(run.toRender, (done, total) => reporter.count?.('keys', done, (identities = total)));
    reporter.count?.('keys', identities, identities);
  } catch (err) {
    for (const d of run.toRender) reporter.done({ id: d.id, status: 'failed', phase: 'keys', message: (err as Error).message });
    throw err;
  }
}
