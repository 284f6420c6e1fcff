// `edgeforge publish`: the fleet repository at a revision -> one OCI artifact per site, pushed to the central
// registry (render/oci/artifact.ts builds them, registry/client.ts pushes). Content-addressed: a site whose
// files did not change has the same layer digest as the artifact its devices already have, so nothing of it is
// pushed; a commit that changes one site pushes that site's artifact only. Each pushed artifact is tagged with
// the revision and `latest` (what devices follow). The signed build manifest records every digest.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import type { Fleet } from '../inventory/fleet.ts';
import type { OciArtifactRecord, OciPublishRecord } from '../manifest/types.ts';
import { siteArtifact, type ArtifactMeta } from '../render/oci/artifact.ts';
import { OCI_MANIFEST_MEDIA_TYPE, OCI_TAG, ociSettings, revisionTag, siteRepository } from '../render/oci/format.ts';
import type { TarFile } from '../render/oci/tar.ts';
import { runsFlux } from '../render/flux/sync.ts';
import { RegistryClient, type Endpoint } from '../registry/client.ts';
import { UserError } from '../util/errors.ts';

const run = promisify(execFile);

export interface TreeAtRevision {
  files: TarFile[];
  /** Flux's revision format: "<branch>@sha1:<commit>" */
  revision: string;
  /** the commit alone (the tag pushed beside `latest`) */
  commit: string;
  /** the commit's time, seconds: the artifacts' created annotation (the same revision gives the same bytes) */
  epoch: number;
}

/**
 * The committed files of a fleet repository working tree at HEAD (git ls-files, read from the tree), refused
 * when the tree differs from HEAD: what is published must be a revision everyone can look up.
 */
export async function readTreeAtHead(dir: string, branch: string): Promise<TreeAtRevision> {
  let commit: string;
  try {
    commit = (await run('git', ['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim();
  } catch {
    throw new UserError(`${dir} is not a Git working tree with a commit: publish reads the fleet repository at a revision (commit the tree edgeforge gitops wrote first)`);
  }
  const dirty = (await run('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'])).stdout.trim();
  if (dirty) throw new UserError(`${dir} has changes not committed (${dirty.split('\n').length} file(s)): publish what is committed, so devices run a revision of the repository`);
  const list = (await run('git', ['-C', dir, 'ls-files', '-z'], { maxBuffer: 256 * 1024 * 1024 })).stdout.split('\0').filter(Boolean);
  const files: TarFile[] = [];
  for (const p of list) files.push({ path: p, bytes: await fs.readFile(path.join(dir, p)) });
  const epoch = Number((await run('git', ['-C', dir, 'show', '-s', '--format=%ct', 'HEAD'])).stdout.trim());
  return { files, revision: `${branch}@sha1:${commit}`, commit, epoch };
}

export interface PublishOptions {
  fleet: Fleet;
  tree: TreeAtRevision;
  /** the central registry, with the publisher's credential */
  endpoint: Endpoint;
  /** the artifacts' created annotation, seconds (default: the commit's time) */
  epoch?: number;
  concurrency?: number;
  onSite?: (site: string, outcome: 'pushed' | 'unchanged') => void;
}

export interface PublishResult {
  record: OciPublishRecord;
  pushed: OciArtifactRecord[];
  unchanged: OciArtifactRecord[];
  /** bytes the publish uploaded (blob and manifest bodies) */
  sentBytes: number;
  requests: number;
}

/** The sites that have devices pulling: at least one active device that runs Flux. */
export function publishedSites(fleet: Fleet): Fleet['sites'] {
  return fleet.sites.filter((s) => s.devices.some((d) => runsFlux(d)));
}

export async function publish(o: PublishOptions): Promise<PublishResult> {
  const oci = ociSettings(o.fleet);
  const client = new RegistryClient(o.endpoint);
  const meta: ArtifactMeta = { source: o.fleet.gitops.url, revision: o.tree.revision, created: new Date((o.epoch ?? o.tree.epoch) * 1000).toISOString().replace('.000Z', 'Z') };
  const tag = revisionTag(o.tree.commit);
  const pushed: OciArtifactRecord[] = [];
  const unchanged: OciArtifactRecord[] = [];
  const limit = pLimit(o.concurrency ?? 4);
  try {
    await Promise.all(
      publishedSites(o.fleet).map((s) =>
        limit(async () => {
          const repo = siteRepository(o.fleet, s);
          const a = siteArtifact(o.tree.files, { region: s.region, site: s.name }, meta);
          const rec = (digest: string, config: { digest: string; size: number }): OciArtifactRecord => ({
            site: s.id,
            repository: repo,
            tag,
            digest,
            config: { digest: config.digest, bytes: config.size },
            layer: { digest: a.layer.digest, bytes: a.layer.bytes.length },
          });
          // what devices have now: the same content layer means nothing to push (its manifest and tags stay)
          const current = await client.manifest(repo, OCI_TAG, OCI_MANIFEST_MEDIA_TYPE);
          const cur = current ? (JSON.parse(current.bytes.toString('utf8')) as { config?: { digest: string; size: number }; layers?: { digest: string }[] }) : undefined;
          const layers = cur?.layers ?? [];
          if (current && cur?.config && layers.length === 1 && layers[0].digest === a.layer.digest) {
            // the config devices resolve is the one in the registry's manifest, recorded as it is there
            unchanged.push({ ...rec(current.digest, cur.config), tag: revisionTagOf(current.bytes) ?? tag });
            o.onSite?.(s.id, 'unchanged');
            return;
          }
          for (const b of [a.layer, a.config]) if (!(await client.hasBlob(repo, b.digest))) await client.pushBlob(repo, b.digest, b.bytes);
          await client.putManifest(repo, tag, a.manifest.mediaType, a.manifest.bytes);
          await client.putManifest(repo, OCI_TAG, a.manifest.mediaType, a.manifest.bytes);
          pushed.push(rec(a.manifest.digest, { digest: a.config.digest, size: a.config.bytes.length }));
          o.onSite?.(s.id, 'pushed');
        }),
      ),
    );
  } finally {
    client.close();
  }
  const order = new Map(o.fleet.sites.map((s, i) => [s.id, i]));
  const artifacts = [...pushed, ...unchanged].sort((a, b) => order.get(a.site)! - order.get(b.site)!);
  return { record: { registry: oci.registry, revision: o.tree.revision, artifacts }, pushed, unchanged, sentBytes: client.traffic.sent, requests: client.traffic.requests };
}

/** The commit an artifact already in the registry was made from (its revision annotation), as a tag. */
function revisionTagOf(manifest: Buffer): string | undefined {
  const rev = (JSON.parse(manifest.toString('utf8')) as { annotations?: Record<string, string> }).annotations?.['org.opencontainers.image.revision'];
  const commit = rev?.split('@sha1:')[1];
  return commit ? revisionTag(commit) : undefined;
}

/**
 * Record a publish in the build's signed manifest: read the manifest whose signature was checked, add the
 * record, sign again, then replace signature and manifest (the manifest last, as the build does).
 */
export async function recordPublish(
  outDir: string,
  manifestBytes: Buffer,
  record: OciPublishRecord,
  sign: (bytes: Uint8Array, epoch: number) => Promise<{ signature: string; publicKey: string }>,
): Promise<void> {
  const { parseManifest } = await import('../manifest/read.ts');
  const { buildManifest, serializeManifest } = await import('../manifest/write.ts');
  const { MANIFEST_NAME } = await import('../manifest/types.ts');
  const { prepareFileAtomic, writeFileAtomic } = await import('../util/atomic.ts');
  const file = path.join(outDir, MANIFEST_NAME);
  const m = parseManifest(manifestBytes, file);
  const next = buildManifest(
    { ...m, oci: record },
    m.devices.map((d) => d.id),
  );
  const bytes = Buffer.from(serializeManifest(next));
  const s = await sign(bytes, m.sourceDateEpoch);
  await writeFileAtomic(path.join(outDir, 'signing-key.asc'), s.publicKey, { skipIfSame: true });
  const sig = await prepareFileAtomic(file + '.asc', s.signature);
  const man = await prepareFileAtomic(file, bytes);
  await sig.commit();
  await man.commit();
}
