// What `edgeforge build` writes for Kubernetes — OUT/gitops and every device's Flux bootstrap manifests (the
// components, the secrets, the sync objects K3s applies at first boot) — against the pinned upstream schemas of the
// K3s line the fleet runs, and every image they pull against the inventory's pins: with Flux as the example ships
// it (a K3s HelmChart, its controller images in valuesContent) and as a pinned release bundle.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { checkObjects, type TreeObject } from '../../scripts/conformance/check-objects.ts';
import { checkImages, imagesOf } from '../../scripts/conformance/image-pins.ts';
import { pinnedImages } from '../../scripts/lifecycle/gitops-check.ts';
import { objectsOfTree, type TreeFile } from '../../scripts/conformance/tree-objects.ts';
import { crdsOfRelease } from '../../scripts/conformance/upstream-crds.ts';
import { pinnedReleases } from '../../scripts/pipeline/gitops/releases.ts';
import { parseK3sVersion } from '../../scripts/inventory/k3s-versions.ts';
import { exampleInventoryText } from '../gitops/fixtures.ts';
import { fleetDir, install } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/conformance/build-output.test.ts');

function files(root: string, rel = ''): TreeFile[] {
  return readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? files(root, r) : /\.ya?ml$/.test(e.name) ? [{ path: r, bytes: readFileSync(path.join(root, r)) }] : [];
  });
}

describe.runIf(HAVE_TOOLS).each([
  ['Flux as a K3s HelmChart (the example as shipped)', (t: string) => t],
  ['Flux as a pinned release bundle', () => exampleInventoryText(install)],
])('build output: %s', (_n, text) => {
  it("OUT/gitops and every device's Flux bootstrap manifests are accepted by the pinned schemas of its K3s line", async () => {
    const f = await fleetDir(text(readFileSync('inventory/example.yaml', 'utf8')));
    try {
      mkdirSync(path.join(f.dir, 'bundles/flux'), { recursive: true });
      const b = await f.run('build', '-o', 'out');
      expect(b.code, b.stderr).toBe(0);
      const fleet = f.fleet();
      const targets = { minors: [parseK3sVersion(fleet.k3s.version)!.minor], crds: pinnedReleases(fleet).flatMap((r) => crdsOfRelease(r)) };
      const gitops = objectsOfTree(files(path.join(f.dir, 'out/gitops')));
      expect(gitops.unreadable).toEqual([]);
      expect(gitops.objects.length).toBeGreaterThan(50);
      expect(checkObjects(gitops.objects, targets).map((x) => `${x.path}: ${x.ref}: ${x.reason}`)).toEqual([]);
      let bootstrap = 0;
      const bootstrapObjects: TreeObject[] = [];
      for (const d of fleet.active.filter((x) => x.cluster.kind !== 'multi-node-agent')) {
        const dir = path.join(f.dir, 'out/devices', d.id, 'bundle/flux');
        const tree = objectsOfTree(files(dir).map((x) => ({ ...x, path: `${d.id}/flux/${x.path}` })));
        bootstrap += tree.objects.length;
        bootstrapObjects.push(...tree.objects);
        expect(checkObjects(tree.objects, targets).map((x) => `${x.path}: ${x.ref}: ${x.reason}`)).toEqual([]);
      }
      expect(bootstrap).toBeGreaterThan(0);
      // the images all of it pulls — the Flux controllers too, inside the HelmChart's valuesContent in Helm mode —
      // each from a named registry and pinned by the inventory; a tag without a digest is the only warning
      const all = [...gitops.objects, ...bootstrapObjects];
      const pulled = new Set(all.flatMap((o) => imagesOf(o.object)));
      expect([...pulled].filter((i) => i.includes('/fluxcd/source-controller:') || i.includes('/fluxcd/kustomize-controller:')).length).toBe(2);
      const images = checkImages(all, await pinnedImages(fleet, 'fleet.yaml', f.dir));
      expect(images.filter((x) => x.severity === 'error').map((x) => `${x.path}: ${x.ref}: ${x.reason}`)).toEqual([]);
      for (const w of images) expect(w.reason).toMatch(/is pinned by tag only/);
    } finally {
      rmSync(f.dir, { recursive: true, force: true });
    }
  }, 180_000);
});
