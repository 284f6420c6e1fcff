// Phase commit: one sync of the output filesystem (every staged file on disk before a manifest can vouch for
// it), the manifest signed, manifest and signature prepared (written, fsynced) while the previous ones still
// stand, then the commit: staged directories swapped in, the signature, and the manifest renamed last (a
// reader who finds it finds its signature). After it, what the new manifest no longer lists is removed.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { serializeManifest } from '../../manifest/write.ts';
import { MANIFEST_NAME, type Manifest } from '../../manifest/types.ts';
import { prepareFileAtomic, writeFileAtomic } from '../../util/atomic.ts';
import { UserError } from '../../util/errors.ts';
import { swapIn, syncOutput } from '../write.ts';
import type { SecretsSource } from '../secrets.ts';
import { abort, timed, type BuildRun } from './context.ts';

type Signature = Awaited<ReturnType<SecretsSource['sign']>>;

/** Returns the signer's fingerprint; a manifest that could not be signed is committed unsigned, then reported (exit 1). */
export async function commit(run: BuildRun, manifest: Manifest, gone: string[]): Promise<{ fingerprint: string } | undefined> {
  const { o } = run;
  const bytes = Buffer.from(serializeManifest(manifest));
  await timed(run, 'sync', () => syncOutput(o.outDir).catch((err) => abort(run, err)));
  const { signature, signError } = await timed(run, 'sign', () => sign(run, bytes));
  await timed(run, 'commit', async () => {
    const prepared = await prepare(run, bytes, signature);
    killPoint('staged');
    const retired: string[] = [];
    // commit 1234/4000: directories swapped in, then the old ones removed (the total grows by each one a swap retires)
    const progress = (done: number) => o.reporter.count?.('commit', done, run.staged.length + retired.length + gone.length);
    for (const [i, s] of run.staged.entries()) {
      if (i === Math.floor(run.staged.length / 2)) killPoint('half-swapped');
      const r = await swapIn(s);
      if (r) retired.push(r);
      progress(i + 1);
    }
    killPoint('swapped');
    if (signError) await fs.rm(path.join(o.outDir, 'manifest.json.asc'), { force: true });
    for (const [i, p] of prepared.entries()) {
      if (i === 1) killPoint('signature-renamed');
      await p.commit();
    }
    await syncOutput(o.outDir);
    await removeDirs([...retired, ...gone.map((id) => path.join(run.devicesDir, id))], (n) => progress(run.staged.length + n));
  });
  if (signError) throw new UserError(`manifest.json written but NOT signed: ${signError.message}`, 1);
  return signature && { fingerprint: signature.fingerprint };
}

/** Removed off the main thread, a few at a time: thousands of directories would stop the progress view for seconds. */
async function removeDirs(dirs: string[], removed: (n: number) => void): Promise<void> {
  const limit = pLimit(8);
  let n = 0;
  removed(0);
  await Promise.all(dirs.map((dir) => limit(() => fs.rm(dir, { recursive: true, force: true }).then(() => removed(++n)))));
}

async function sign(run: BuildRun, bytes: Uint8Array): Promise<{ signature?: Signature; signError?: Error }> {
  try {
    run.o.reporter.count?.('sign', 0, 1);
    const signature = await run.o.secrets.sign(bytes, run.o.sourceDateEpoch);
    run.o.reporter.count?.('sign', 1, 1);
    return { signature };
  } catch (err) {
    return { signError: err as Error };
  }
}

/** The signing key, signature and manifest written beside the live ones, not yet renamed over them. */
async function prepare(run: BuildRun, bytes: Uint8Array, signature: Signature | undefined) {
  const { outDir } = run.o;
  const prepared = [];
  try {
    if (signature) {
      await writeFileAtomic(path.join(outDir, 'signing-key.asc'), signature.publicKey, { skipIfSame: true });
      prepared.push(await prepareFileAtomic(path.join(outDir, 'manifest.json.asc'), signature.signature, { skipIfSame: true }));
    }
    prepared.push(await prepareFileAtomic(path.join(outDir, MANIFEST_NAME), bytes, { skipIfSame: true }));
  } catch (err) {
    for (const p of prepared) await p.discard();
    await abort(run, err);
  }
  return prepared;
}

/** Tests kill the build at named points of the commit (EDGEFORGE_TEST_KILL_AT), besides random SIGKILLs. */
function killPoint(name: string): void {
  if (process.env.EDGEFORGE_TEST_KILL_AT === name) process.kill(process.pid, 'SIGKILL');
}
