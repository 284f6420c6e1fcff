// What `edgeforge plan` reads besides the inventory, handed to the pure plan: the registries of the pinned
// Flux bundle, the GitOps tree measured with git (when one was written), the size of the pinned k3s-upgrade
// archive (when the inventory pins one), and what the inventory's inputs hold that expires (the broker CA). Anything missing is said so in the plan, not guessed.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import type { PlanInputs } from '../../render/plan/plan.ts';
import { k3sUpgradeImage, qualifiedImage } from '../../render/day2/upgrade-images.ts';
import { fluxBundleImages } from './flux-bundle.ts';
import { fleetExpiries } from './expiries.ts';
import { measureTreeFetch } from '../gitops/measure.ts';
import { UsageError } from '../../util/errors.ts';
import { siteArtifactSizes } from '../../render/plan/load.ts';
import type { TarFile } from '../../render/oci/tar.ts';

/** Every file of a GitOps tree (relative paths, without .git and edgeforge's input stamp). */
async function readTree(dir: string): Promise<TarFile[]> {
  const files: TarFile[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const abs = path.join(e.parentPath, e.name);
    const rel = path.relative(dir, abs).split(path.sep).join('/');
    if (rel.startsWith('.git/') || rel === '.edgeforge-inputs') continue;
    files.push({ path: rel, bytes: await fs.readFile(abs) });
  }
  return files;
}

async function isDir(p: string): Promise<boolean> {
  return fs.stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** `gitops`: the tree to measure (an explicit --gitops DIR must exist; the build's OUT/gitops is used when present). */
export async function planInputs(fleet: Fleet, o: { inventory: string; cwd: string; gitops?: string; out: string }): Promise<PlanInputs> {
  const inp: PlanInputs = { fluxImages: await fluxBundleImages(fleet, o.inventory, o.cwd), expiries: await fleetExpiries(fleet, path.resolve(o.cwd, o.inventory)) };
  const tree = o.gitops ?? path.join(o.out, 'gitops');
  if (await isDir(path.resolve(o.cwd, tree))) {
    inp.treeFetch = await measureTreeFetch(path.resolve(o.cwd, tree), tree);
    inp.siteArtifacts = siteArtifactSizes(fleet, await readTree(path.resolve(o.cwd, tree)));
  } else if (o.gitops) throw new UsageError(`--gitops ${o.gitops}: no such directory`);
  const want = qualifiedImage(k3sUpgradeImage(fleet, fleet.k3s.version).ref);
  const pin = fleet.imageArchives.find((a) => a.component === 'k3s-upgrade' && qualifiedImage(a.image) === want);
  if (pin)
    inp.upgradeImageBytes = await fs.stat(path.resolve(o.cwd, path.dirname(o.inventory), pin.file)).then(
      (s) => s.size,
      () => undefined,
    );
  return inp;
}
