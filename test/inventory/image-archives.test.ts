// Pinned container image archives in the inventory (gitops.flux.install.images, the list any component that
// runs containers contributes to — scripts/inventory/image-archives.ts): malformed pins, clashing names, missing or
// wrong files, a Flux controller image without an archive — every problem at once, FILE:LINE:COL, exit 2,
// nothing written. The archives are real docker-archive tars made by the test, pinned by their real sha256.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { IMAGE_ARCHIVE_SOURCES } from '../../scripts/inventory/image-archives.ts';
import { InventoryError } from '../../scripts/util/errors.ts';
import { makeImageArchive } from '../../scripts/testkit/image-archive.ts';
import { runCli } from '../helpers.ts';
import { airgapInventory, entry, fluxBundle, KC, SC } from './airgap-fixture.ts';

let tmp: string;
let pins: Record<string, { sha256: string }>;
const good = () => entry(SC, 'bundles/flux/source-controller.tar', pins.sc.sha256) + entry(KC, 'bundles/flux/kustomize-controller.tar.zst', pins.kc.sha256);

function problems(text: string): string[] {
  try {
    loadInventoryBytes(Buffer.from(text), 'inv.yaml');
  } catch (err) {
    if (err instanceof InventoryError) return err.format().split('\n');
    throw err;
  }
  return [];
}
const lineOf = (text: string, needle: string) => text.slice(0, text.indexOf(needle)).split('\n').length;

async function validate(text: string, files = true) {
  const dir = mkdtempSync(path.join(tmp, 'inv-'));
  mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
  writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), fluxBundle());
  if (files) {
    for (const f of readdirSync(path.join(tmp, 'archives'))) writeFileSync(path.join(dir, 'bundles/flux', f), readFileSync(path.join(tmp, 'archives', f)));
  }
  writeFileSync(path.join(dir, 'inventory.yaml'), text);
  const before = readdirSync(dir, { recursive: true }).length;
  const r = await runCli(['validate', '-i', 'inventory.yaml'], { cwd: dir });
  expect(readdirSync(dir, { recursive: true }).length, 'validate wrote something').toBe(before);
  return r;
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-image-archives-'));
  pins = {
    sc: await makeImageArchive(path.join(tmp, 'archives/source-controller.tar'), SC),
    kc: await makeImageArchive(path.join(tmp, 'archives/kustomize-controller.tar.zst'), KC),
  };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('image archive pins in the inventory', () => {
  it('a good list resolves into the fleet-wide list with positions, in component order', () => {
    const text = airgapInventory(good());
    const fleet = loadInventoryBytes(Buffer.from(text), 'inv.yaml');
    expect(fleet.imageArchives.map((p) => [p.component, p.image, p.name, p.sha256])).toEqual([
      ['flux', SC, 'source-controller.tar', pins.sc.sha256],
      ['flux', KC, 'kustomize-controller.tar.zst', pins.kc.sha256],
    ]);
    expect(fleet.imageArchives[1].at.file.line).toBe(lineOf(text, 'file: bundles/flux/kustomize-controller.tar.zst'));
    expect(fleet.imageArchiveLists.flux.line).toBe(lineOf(text, `        - image: ${SC}`));
    // the mechanism is a table: every component's list is read the same way
    expect(IMAGE_ARCHIVE_SOURCES.map((s) => s.component)).toContain('flux');
  });

  it('reports every malformed pin at once, each at its line', () => {
    const text = airgapInventory(
      entry('fluxcd/source-controller:v1.4.1', 'bundles/flux/a.tar', pins.sc.sha256) + // no registry host
        entry('ghcr.io/fluxcd/kustomize-controller:latest', 'bundles/flux/b.tar', pins.kc.sha256) + // moving tag
        entry('ghcr.io/fluxcd/helm-controller:v1.1.0', 'bundles/flux/c.txt', pins.kc.sha256) + // K3s reads .txt as a pull list
        entry('ghcr.io/fluxcd/notification-controller:v1.4.0', 'bundles/flux/d.tar', 'ABC123') + // malformed sha256
        '        - image: ghcr.io/fluxcd/x:v1\n          file: bundles/flux/e.tar\n', // sha256 missing
    );
    const p = problems(text);
    expect(p.length).toBeGreaterThanOrEqual(5);
    expect(p.some((l) => l.startsWith(`inv.yaml:${lineOf(text, '- image: fluxcd/source-controller:v1.4.1')}:`) && /registry host/.test(l))).toBe(true);
    expect(p.some((l) => l.startsWith(`inv.yaml:${lineOf(text, '- image: ghcr.io/fluxcd/kustomize-controller:latest')}:`) && /other than "latest"/.test(l))).toBe(true);
    expect(p.some((l) => l.startsWith(`inv.yaml:${lineOf(text, 'file: bundles/flux/c.txt')}:`) && /\.tar\.zst/.test(l))).toBe(true);
    expect(p.some((l) => l.startsWith(`inv.yaml:${lineOf(text, 'ABC123')}:`) && /sha256/.test(l))).toBe(true);
    expect(p.some((l) => /missing required key "sha256"/.test(l))).toBe(true);
  });

  it('two archives with one file name (they share a directory on the device), the same image twice, a K3s file name', () => {
    const text = airgapInventory(
      entry(SC, 'bundles/flux/same.tar', pins.sc.sha256) +
        entry(KC, 'other/SAME.tar', pins.kc.sha256) +
        entry(SC, 'bundles/flux/x.tar', pins.sc.sha256) +
        entry('ghcr.io/a/b:v1', 'x/k3s-airgap-images-arm64.tar.zst', pins.sc.sha256),
    );
    const p = problems(text);
    expect(p.some((l) => l.startsWith(`inv.yaml:${lineOf(text, 'other/SAME.tar')}:`) && /already used at line \d+/.test(l))).toBe(true);
    expect(p.some((l) => /image ghcr.io\/fluxcd\/source-controller:v1.9.6 is already pinned at line/.test(l))).toBe(true);
    expect(p.some((l) => /one of K3s's own airgap files/.test(l))).toBe(true);
  });
});

describe('edgeforge validate: the archive files', () => {
  it('passes with real archives pinned by their real sha256', async () => {
    const r = await validate(airgapInventory(good()));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/valid/);
  });

  it('missing files, a wrong hash and a controller image without an archive: every problem with FILE:LINE:COL, exit 2', async () => {
    const text = airgapInventory(entry(SC, 'bundles/flux/source-controller.tar', pins.kc.sha256) + entry('ghcr.io/fluxcd/other:v1', 'bundles/flux/gone.tar', pins.sc.sha256));
    const r = await validate(text);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n');
    const wrong = lines.find((l) => l.startsWith(`inventory.yaml:${lineOf(text, `sha256: "${pins.kc.sha256}"`)}:`));
    expect(wrong, r.stderr).toMatch(new RegExp(`has sha256 ${pins.sc.sha256} but the inventory pins ${pins.kc.sha256}`));
    expect(
      lines.find((l) => l.startsWith(`inventory.yaml:${lineOf(text, 'file: bundles/flux/gone.tar')}:`)),
      r.stderr,
    ).toMatch(/no such file/);
    // kustomize-controller's image is in the bundle, not in the list: an airgapped device could never run it
    expect(r.stderr).toMatch(new RegExp(`kustomize-controller runs ${KC.replace(/[.]/g, '\\.')}, which has no pinned archive`));
  });

  it('an all-zeros placeholder pin warns (validate passes; the build refuses it)', async () => {
    const text = airgapInventory(entry(SC, 'bundles/flux/source-controller.tar', '0'.repeat(64)) + entry(KC, 'bundles/flux/kustomize-controller.tar.zst', pins.kc.sha256));
    const r = await validate(text);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: 1 image archive pin\(s\) are the all-zeros placeholder/);
  });

  it('an online install delivers no archives: pinned ones (even missing) only warn that they are unused', async () => {
    const text = airgapInventory(good() + entry('ghcr.io/fluxcd/other:v1', 'bundles/flux/gone.tar', pins.sc.sha256)).replace(
      /  install:\n    mode: airgap\n    bundle: bundles\/k3s\n    sha256: [^\n]*\n/,
      `  install:\n    mode: online\n    installScriptSha256: "${'d'.repeat(64)}"\n`,
    );
    const r = await validate(text);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: 3 image archive\(s\) are pinned, but k3s.install.mode is online: only an airgap install delivers them/);
  });

  it('airgap K3s with Flux from a Helm chart warns that the chart comes from the internet', async () => {
    const text = airgapInventory(good()).replace(
      /    install:\n      mode: bundle\n[\s\S]*?(?=\nadmins:)/,
      '    install: { mode: helm, chartVersion: "2.19.0", repo: "https://fluxcd-community.github.io/helm-charts" }\n',
    );
    const r = await validate(text, false);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: k3s.install.mode is airgap but gitops.flux.install is a Helm chart/);
  });
});

describe('the archive holds the image it is pinned for (read from the archive itself)', () => {
  it('an archive of another image, correctly hashed, is refused at its entry; gzip docker-archives and OCI layouts are read', async () => {
    const { gzipSync } = await import('node:zlib');
    const { tarOf, imageArchiveBytes } = await import('../../scripts/testkit/image-archive.ts');
    const { createHash } = await import('node:crypto');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const dir = mkdtempSync(path.join(tmp, 'refs-'));
    const other = imageArchiveBytes('ghcr.io/fluxcd/helm-controller:v1.1.0');
    const gz = gzipSync(imageArchiveBytes(KC));
    const oci = tarOf([
      { name: 'oci-layout', bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
      {
        name: 'index.json',
        bytes: Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + '1'.repeat(64), size: 1, annotations: { 'io.containerd.image.name': SC } }],
          }),
        ),
      },
    ]);
    mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
    writeFileSync(path.join(dir, 'bundles/flux/other.tar'), other);
    writeFileSync(path.join(dir, 'bundles/flux/kc.tar.gz'), gz);
    writeFileSync(path.join(dir, 'bundles/flux/sc-oci.tar'), oci);
    writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), fluxBundle());
    const run = async (images: string) => {
      writeFileSync(path.join(dir, 'inventory.yaml'), airgapInventory(images));
      return runCli(['validate', '-i', 'inventory.yaml'], { cwd: dir });
    };
    const ok = await run(entry(SC, 'bundles/flux/sc-oci.tar', sha(oci)) + entry(KC, 'bundles/flux/kc.tar.gz', sha(gz)));
    expect(ok.code, ok.stderr).toBe(0);
    const text = airgapInventory(entry(SC, 'bundles/flux/other.tar', sha(other)) + entry(KC, 'bundles/flux/kc.tar.gz', sha(gz)));
    const bad = await run(entry(SC, 'bundles/flux/other.tar', sha(other)) + entry(KC, 'bundles/flux/kc.tar.gz', sha(gz)));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`inventory.yaml:${lineOf(text, `- image: ${SC}`)}:`);
    expect(bad.stderr).toMatch(/the archive holds ghcr\.io\/fluxcd\/helm-controller:v1\.1\.0, not ghcr\.io\/fluxcd\/source-controller:v1\.9\.6/);
  });

  it('references are compared the way containerd names images', async () => {
    const { normalizeRef, archiveHolds } = await import('../../scripts/pipeline/inputs/image-refs.ts');
    expect(normalizeRef('nginx:1.27')).toBe('docker.io/library/nginx:1.27');
    expect(normalizeRef('rancher/k3s-upgrade:v1.35.6-k3s1')).toBe('docker.io/rancher/k3s-upgrade:v1.35.6-k3s1');
    expect(normalizeRef('registry.local:5000/a/b:1')).toBe('registry.local:5000/a/b:1');
    expect(archiveHolds(['docker.io/rancher/kubectl:v1.35.6'], 'docker.io/rancher/kubectl:v1.35.6')).toBe(true);
    expect(archiveHolds(['v1.4.1'], 'ghcr.io/fluxcd/source-controller:v1.4.1')).toBe(true);
    expect(archiveHolds(['ghcr.io/fluxcd/source-controller:v1.4.0'], 'ghcr.io/fluxcd/source-controller:v1.4.1')).toBe(false);
  });
});
