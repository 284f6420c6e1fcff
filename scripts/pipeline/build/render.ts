// Phase render, per device: its files (render/device.ts with the build's stages), its images (device-images.ts), and
// its staged directory (pipeline/write.ts) with the airgap files linked in, then its manifest entry. A device
// that fails is reported and the others go on; an output that cannot be written stops every device after it.
//
// Rendering, seed images and staging are CPU and synchronous small-file work on this thread (pipeline/write.ts
// says why sync): running devices side by side gains nothing and blurs the per-stage split. The disk still
// works in parallel: the kernel writes the page cache back while we go on, and one sync waits for it all.
// Only --base-image (which reads the base asynchronously) runs --concurrency devices at once.
import { promises as fs } from 'node:fs';
import pLimit from 'p-limit';
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { renderDevice } from '../../render/device.ts';
import type { RenderedFile } from '../../render/files.ts';
import { registryPullRecord } from '../../render/flux/secrets.ts';
import { ringAirgap, ringOf } from '../../render/day2/rings.ts';
import type { ManifestArtifact, ManifestDevice } from '../../manifest/types.ts';
import { breather } from '../../util/breather.ts';
import { sha256Hex } from '../../util/hash.ts';
import { dataRanges, dataSha256, rangesLength } from '../../util/sparse.ts';
import { linkAirgapInto } from '../inputs/airgap.ts';
import { stageDevice, stagingDir } from '../write.ts';
import { deviceImages } from './device-images.ts';
import { optional } from './manifest.ts';
import { isOutputError, outputError, timed, type BuildRun } from './context.ts';

export async function render(run: BuildRun): Promise<void> {
  const limit = pLimit(run.o.baseImage ? Math.max(1, run.o.concurrency) : 1);
  // between devices the loop lets the progress view redraw (it would freeze for the whole stage otherwise)
  const breathe = breather();
  await Promise.all(
    run.toRender.map((d) =>
      limit(async () => {
        await breathe();
        await renderOne(run, d);
      }),
    ),
  );
}

async function renderOne(run: BuildRun, d: ResolvedDevice): Promise<void> {
  const { o, fleet } = run;
  const { reporter } = o;
  let phase = 'render';
  const enter = (p: string) => reporter.update(d.id, { phase: (phase = p) });
  if (run.fatal) return reporter.done({ id: d.id, status: 'failed', phase, message: 'not built: the output cannot be written (see below)' });
  enter('render');
  try {
    // an identity made just now: its digest for the manifest and the stamp, so the next build can skip it
    if (!run.inputs.get(d.id) && o.secrets.identities) run.inputs.set(d.id, (await run.inputsOf([d])).get(d.id));
    const secrets = run.secrets.get(d.id)!;
    const files = await timed(run, 'render', () => renderDevice(fleet, d, secrets, run.stages.render));
    const images = await deviceImages(run, d, files, enter);
    enter('write');
    const all = [...files, ...images.files];
    const { airgapArtifacts } = await stageOne(run, d, all);
    run.entries.set(d.id, {
      id: d.id,
      region: d.region,
      site: d.site,
      profile: d.profileName,
      inputs: run.inputs.get(d.id),
      artifacts: [...all.map((f) => artifact(`devices/${d.id}/${f.path}`, f)), ...airgapArtifacts],
      ...optional('registry', registryPullRecord(d, fleet, secrets.deployKey?.privateKey)),
    });
    reporter.done({ id: d.id, status: 'ok', phase: 'done', message: [`${all.length + airgapArtifacts.length} files`, images.note].filter(Boolean).join('; ') });
  } catch (err) {
    if (isOutputError(err)) run.fatal ??= outputError(o.outDir, err);
    reporter.done({ id: d.id, status: 'failed', phase, message: (err as Error).message });
  }
}

/** The device's files into its staging directory, the airgap files linked in; nothing left behind on failure. */
async function stageOne(run: BuildRun, d: ResolvedDevice, all: RenderedFile[]): Promise<{ airgapArtifacts: ManifestArtifact[] }> {
  const dir = stagingDir(run.devicesDir, d.id);
  return timed(run, 'write', async () => {
    try {
      const staged = await stageDevice(run.devicesDir, d.id, all, run.inputs.get(d.id), dir);
      const airgapArtifacts: ManifestArtifact[] = [];
      if (run.airgap) {
        for (const a of await linkAirgapInto(run.airgap, dir, ringAirgap(run.fleet, ringOf(d))!.ring))
          airgapArtifacts.push({ kind: 'other', path: `devices/${d.id}/${a.path}`, sha256: a.sha256, bytes: a.bytes, secret: false });
      }
      run.staged.push(staged);
      return { airgapArtifacts };
    } catch (err) {
      await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  });
}

function artifact(outRel: string, f: Pick<RenderedFile, 'kind' | 'bytes' | 'secret'>): ManifestArtifact {
  const a: ManifestArtifact = { kind: f.kind, path: outRel, sha256: sha256Hex(f.bytes), bytes: f.bytes.length, secret: f.secret };
  // written with holes (pipeline/write.ts): where the data is, so verify hashes only that
  const data = dataRanges(f.bytes);
  if (data && rangesLength(data) < f.bytes.length) a.sparse = { data, sha256: dataSha256(f.bytes, data) };
  return a;
}
