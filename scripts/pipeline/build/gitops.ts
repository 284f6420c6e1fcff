// Phase gitops: OUT/gitops, the repository scaffold (pipeline/flux.ts). It covers the whole fleet: a full
// build writes it, --only keeps the previous one; with --shard, shard 1 writes it, so the merged manifest
// equals an unsharded build's. An output that cannot be written stops the build before the commit.
import { abort, isOutputError, type BuildRun } from './context.ts';

export async function gitops(run: BuildRun): Promise<void> {
  const { o } = run;
  const scaffold = run.stages.scaffold;
  if (!scaffold || o.only?.length || (o.shard && o.shard.k !== 1)) return;
  try {
    run.gitops = await scaffold(run.fleet, o.outDir);
  } catch (err) {
    if (isOutputError(err)) await abort(run, err);
    throw err;
  }
}
