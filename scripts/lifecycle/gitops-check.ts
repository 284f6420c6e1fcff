// `edgeforge gitops --check [--against DIR|REV]`: the tree `gitops --to` would write, checked offline before
// anything is pushed — written into a copy of the working tree by the same writer, then every object against the
// pinned upstream APIs of every K3s line it targets, every change against the tree the clusters applied before
// (the working tree as it is, another directory, or a Git revision), the images edgeforge's objects pull, and
// what expires. Errors: one line per object and reason. Warnings (expiry, tag-only images) fail only --strict.
import { execFileSync } from 'node:child_process';
import { promises as fs, type Dirent } from 'node:fs';
import pLimit from 'p-limit';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import { UserError } from '../util/errors.ts';
import { parseK3sVersion } from '../inventory/k3s-versions.ts';
import { checkObjects, type Finding, type TreeObject } from '../conformance/check-objects.ts';
import { checkTransition } from '../conformance/transitions.ts';
import { kubernetesApi } from '../conformance/kubernetes-api.ts';
import { checkImages, type PinnedImage } from '../conformance/image-pins.ts';
import { expiryFindings, joinTokenExpiries } from '../conformance/expiry.ts';
import { objectsOfTree, type ParseCache, type TreeFile } from '../conformance/tree-objects.ts';
import { crdsOfRelease } from '../conformance/upstream-crds.ts';
import { isManaged } from '../render/gitops/marker.ts';
import { ringVersions } from '../render/day2/rings.ts';
import { controllerImage, k3sUpgradeRepository, kubectlImage } from '../render/day2/upgrade-images.ts';
import { fluxBundleImages } from '../pipeline/inputs/flux-bundle.ts';
import { fluxHelmImages } from '../render/flux/components.ts';
import { pinnedReleases } from '../pipeline/gitops/releases.ts';
import { writeGitops, type GitopsWrite } from './gitops-write.ts';
import { joinWindowDays } from '../keys/join-token.ts';

export interface GitopsCheck extends Omit<GitopsWrite, 'dryRun'> {
  /** the tree the clusters applied before: a directory, or a Git revision of `dir`; default `dir` as it is */
  against?: string;
  /** time-bound warnings of the inventory's pins (pipeline/inputs/expiries.ts), reported with the tree's */
  timeWarnings?: string[];
}

export interface GitopsCheckReport {
  errors: Finding[];
  warnings: string[];
  checked: { files: number; objects: number; kubernetes: string[]; releases: string[]; against: string };
}

async function readTree(root: string): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (e.name !== '.git') await walk(r);
      } else if (e.isFile() && /\.ya?ml$/.test(e.name)) out.push({ path: r, bytes: await fs.readFile(path.join(root, r)) });
    }
  };
  await walk('');
  return out;
}

/** A copy of the working tree to write into (without .git); fs.cp is an order of magnitude slower on 10,000 files. */
async function copyTree(from: string, to: string): Promise<void> {
  const limit = pLimit(32);
  const jobs: Promise<void>[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(path.join(from, rel), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return; // no tree yet: --to creates it
      throw err;
    }
    await fs.mkdir(path.join(to, rel), { recursive: true });
    for (const e of entries) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        if (e.name !== '.git') await walk(r);
      } else if (e.isFile()) jobs.push(limit(() => fs.copyFile(path.join(from, r), path.join(to, r))));
    }
  };
  await walk('');
  await Promise.all(jobs);
}

/** The previous tree as files: a directory, or `git archive` of a revision of the working tree's repository. */
async function previousTree(dir: string, against: string | undefined, scratch: string): Promise<{ files: TreeFile[]; what: string }> {
  if (!against) return { files: await readTree(dir), what: `${dir} as it is` };
  const asDir = path.resolve(against);
  if (
    await fs.stat(asDir).then(
      (s) => s.isDirectory(),
      () => false,
    )
  )
    return { files: await readTree(asDir), what: asDir };
  const out = path.join(scratch, 'before');
  await fs.mkdir(out);
  const tar = path.join(scratch, 'before.tar');
  try {
    execFileSync('git', ['-C', dir, 'archive', '--format=tar', '-o', tar, against], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new UserError(`--against ${against}: neither a directory nor a revision of ${dir} (${String((err as { stderr?: Buffer }).stderr ?? err).trim()})`);
  }
  execFileSync('tar', ['-xf', tar, '-C', out]);
  return { files: await readTree(out), what: `${against} of ${dir}` };
}

/** The minors the tree must apply on: each ring's now, and what the previous tree's Plans held (nodes not yet upgraded). */
function targetMinors(fleet: Fleet, before: TreeObject[]): number[] {
  const versions = [...ringVersions(fleet).map((r) => r.version), ...before.filter((t) => t.object.kind === 'Plan').map((t) => String((t.object.spec as { version?: string })?.version ?? ''))];
  return [...new Set(versions.map((v) => parseK3sVersion(v)?.minor).filter((m): m is number => m !== undefined))].sort((a, b) => a - b);
}

/** The images the inventory pins for what edgeforge renders: the upgrade controller's, kubectl, k3s-upgrade, Flux's controllers. */
export async function pinnedImages(fleet: Fleet, inventory: string, cwd: string): Promise<PinnedImage[]> {
  return [
    ...[controllerImage(fleet), kubectlImage(fleet)].map((i) => ({ ref: i.pull, role: i.role })),
    { ref: k3sUpgradeRepository(fleet), role: "k3s-upgrade (a Plan names the repository; the controller adds the version's tag)", repositoryOnly: true },
    ...((await fluxBundleImages(fleet, inventory, cwd)) ?? []).map((ref) => ({ ref, role: 'Flux controller (pinned bundle)' })),
    ...fluxHelmImages(fleet).map((ref) => ({ ref, role: `Flux controller of ${fleet.gitops.flux.version} (Helm chart values: a tag, no digest; pin a bundle for digests)` })),
  ];
}

export async function checkGitops(fleet: Fleet, o: GitopsCheck): Promise<GitopsCheckReport> {
  const scratch = await fs.mkdtemp(path.join(tmpdir(), 'edgeforge-gitops-check-'));
  try {
    const after = path.join(scratch, 'after');
    await copyTree(o.dir, after);
    const wrote = await writeGitops(fleet, { ...o, dir: after, dryRun: false, fsync: false });
    const prev = await previousTree(o.dir, o.against, scratch);
    const afterFiles = await readTree(after);
    const cache: ParseCache = new Map(); // most files are the same before and after: parse each text once
    const before = objectsOfTree(prev.files, cache).objects;
    const tree = objectsOfTree(afterFiles, cache);
    const minors = targetMinors(fleet, before);
    const releases = pinnedReleases(fleet);
    const crds = releases.flatMap((r) => crdsOfRelease(r));
    const managed = new Set(afterFiles.filter((f) => isManaged(f.bytes)).map((f) => f.path));
    const pinned = await pinnedImages(fleet, o.inventory, o.cwd);
    const images = checkImages(
      tree.objects.filter((t) => managed.has(t.path)),
      pinned,
    );
    const objects = checkObjects(tree.objects, { minors, crds });
    const errors = [
      ...tree.unreadable.map((u) => ({ path: u.path, ref: '-', reason: `not readable YAML: ${u.reason}` })),
      ...objects.filter((f) => !f.warning),
      ...checkTransition(before, tree.objects),
      ...images.filter((f) => f.severity === 'error'),
    ];
    const warnings = [
      ...wrote.warnings,
      ...objects.filter((f) => f.warning).map((f) => `${f.path}: ${f.ref}: ${f.reason}`),
      ...images.filter((f) => f.severity === 'warning').map((f) => `${f.path}: ${f.ref}: ${f.reason}`),
      ...(o.timeWarnings ?? []),
      ...expiryFindings(joinTokenExpiries(tree.objects, joinWindowDays(fleet)), o.now).map((e) => e.message),
    ];
    return {
      errors,
      warnings: [...new Set(warnings)],
      checked: { files: afterFiles.length, objects: tree.objects.length, kubernetes: minors.map((m) => `1.${m}${kubernetesApi(m) ? '' : ' (no API on file)'}`), releases, against: prev.what },
    };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}
