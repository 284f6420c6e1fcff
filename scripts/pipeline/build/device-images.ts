// Phase images, per device: the seed image (FAT "CIDATA" with the three seed files) and, with --base-image,
// the disk delta against the base (the A/B or fleet base when the inputs phase derived one).
import { makeSeedImage } from '../../disk/seed-image.ts';
import { personalize, type PersonalizeResult } from '../../disk/personalize.ts';
import { deltaRenderedFile, writeBaseRecord } from '../../disk/output.ts';
import { BaseLayoutError } from '../../util/errors.ts';
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import type { RenderedFile } from '../../render/files.ts';
import { timed, type BuildRun } from './context.ts';

export const SEED_IMAGE = 'seed.img';

/** The device's image files, and a note when it gets no disk delta (and why). */
export async function deviceImages(run: BuildRun, d: ResolvedDevice, files: RenderedFile[], enter: (phase: string) => void): Promise<{ files: RenderedFile[]; note: string }> {
  const { o } = run;
  const seedFiles = ['user-data', 'meta-data', 'network-config'].map((n) => ({ name: n, bytes: files.find((f) => f.path === `seed/${n}`)!.bytes }));
  enter('seed-image');
  const seed = await timed(run, 'images', () => makeSeedImage(seedFiles, { epoch: o.sourceDateEpoch }));
  const out: RenderedFile[] = [{ path: SEED_IMAGE, kind: 'seed-image', bytes: seed, mode: 0o600, secret: true }];
  const base = run.baseImage;
  if (!o.baseImage || !base) return { files: out, note: '' };
  const pin = d.profile.baseImage.sha256;
  if (pin && pin !== base.sha256) return { files: out, note: `no disk delta: profile ${d.profileName} pins another base image (${pin.slice(0, 12)}…)` };
  enter('disk');
  const layout = d.profile.baseImage.layout;
  let p: PersonalizeResult;
  try {
    p = await timed(run, 'images', () => personalize({ base: run.diskBase, basePath: o.baseImage!.path, baseSha256: base.sha256, profile: layout, files: seedFiles, epoch: o.sourceDateEpoch }));
  } catch (err) {
    // one --base-image fits one layout: devices of another profile keep their seed image only
    if (!(err instanceof BaseLayoutError)) throw err;
    return { files: out, note: `no disk delta: ${(err as Error).message}` };
  }
  out.push(deltaRenderedFile(p.delta));
  if (!run.baseRecorded) {
    run.baseRecorded = true;
    await writeBaseRecord(o.outDir, p.base, layout);
  }
  return { files: out, note: '' };
}
