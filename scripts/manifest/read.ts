// Reading manifest.json: the one reader every tool uses. It checks the whole shape (zod) and returns the typed
// manifest, or throws ManifestError naming the file and what is wrong. Keys it does not know are dropped, so
// a writer that grows does not break older readers; the schema's key order is the writer's (a manifest read
// and written again keeps its bytes). Grown so far, still edgeforge-manifest/1: a device's `inputs`, an
// artifact's `sparse` (both optional; readers without them ignore them and lose nothing they check).
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { ManifestError } from '../util/errors.ts';
import { MANIFEST_FORMAT, type Manifest } from './types.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256 (64 lower-case hex digits)');
/** a path inside OUT: relative, forward slashes, no "..", no empty segment */
const outPath = z.string().refine((p) => p.length > 0 && !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === ''), 'must be a path relative to OUT, without ".."');
const count = z.number().int().nonnegative();

const artifact = z
  .object({
    kind: z.enum(['user-data', 'meta-data', 'network-config', 'seed-image', 'k3s-config', 'k3s-registries', 'flux-bootstrap', 'firstboot', 'disk-delta', 'bmap', 'other']),
    path: outPath,
    sha256,
    bytes: count,
    secret: z.boolean(),
    sparse: z.object({ data: z.array(z.tuple([count, count])), sha256 }).optional(),
  })
  // data ranges in order, each non-empty, none overlapping another or reaching past the file: the rest is holes
  .refine((a) => !a.sparse || a.sparse.data.every(([off, len], i, all) => len > 0 && off + len <= a.bytes && (i === 0 || off >= all[i - 1][0] + all[i - 1][1])), {
    message: 'sparse.data must be non-empty [offset, length] ranges in order, not overlapping, inside the file',
    path: ['sparse', 'data'],
  });

const fleetBase = z.object({
  path: outPath,
  sha256,
  bytes: count,
  airgapPartition: z.object({ number: count, scheme: z.enum(['gpt', 'mbr']), start: count, size: count, name: z.string(), label: z.string() }),
});

const ociDigest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected an OCI digest (sha256:<64 hex digits>)');
const registryPull = z.object({ repository: z.string().min(1), username: z.string().min(1), verifier: sha256 });
const ociPublish = z.object({
  registry: z.string().min(1),
  revision: z.string().min(1),
  artifacts: z.array(
    z.object({
      site: z.string().min(1),
      repository: z.string().min(1),
      tag: z.string().min(1),
      digest: ociDigest,
      // optional: manifests signed before it was recorded still verify
      config: z.object({ digest: ociDigest, bytes: count }).optional(),
      layer: z.object({ digest: ociDigest, bytes: count }),
    }),
  ),
});

const abBase = z.object({ path: outPath, sha256, bytes: count, layout: z.enum(['uefi-gpt', 'raspi-mbr']), version: z.string().min(1) });
const layout = z.enum(['uefi-gpt', 'raspi-mbr']);
const os = z.object({
  rings: z.array(z.object({ ring: z.enum(['canary', 'stable']), version: z.string().min(1) })),
  bundles: z.array(z.object({ version: z.string().min(1), layout, file: z.string().min(1), sha256 })),
});

const schema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  fleet: z.string(),
  inventorySha256: sha256,
  sourceDateEpoch: count,
  baseImage: z.object({ path: z.string(), sha256, fleetBase: fleetBase.optional(), abBase: abBase.optional() }).optional(),
  gitops: z.object({ path: outPath }).optional(),
  oci: ociPublish.optional(),
  os: os.optional(),
  devices: z.array(
    z.object({ id: z.string().min(1), region: z.string(), site: z.string(), profile: z.string(), inputs: sha256.optional(), artifacts: z.array(artifact), registry: registryPull.optional() }),
  ),
});

function where(p: readonly PropertyKey[]): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('') || '(top level)';
}

/** Check a manifest (its bytes, its text or parsed JSON) read from `file`. */
export function parseManifest(input: Uint8Array | string | unknown, file: string): Manifest {
  let data: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    try {
      data = JSON.parse(typeof input === 'string' ? input : Buffer.from(input).toString('utf8'));
    } catch (err) {
      throw new ManifestError(file, `not JSON (${(err as Error).message})`);
    }
  }
  const format = (data as { format?: unknown } | null)?.format;
  if (!data || typeof data !== 'object' || typeof format !== 'string' || !format.startsWith('edgeforge-manifest/')) {
    throw new ManifestError(file, `not an edgeforge manifest (no "format": "${MANIFEST_FORMAT}")`);
  }
  if (format !== MANIFEST_FORMAT) throw new ManifestError(file, `manifest format ${format} is newer than this edgeforge understands; upgrade edgeforge`);
  const r = schema.safeParse(data);
  if (!r.success) {
    const issues = r.error.issues;
    const shown = issues.slice(0, 3).map((i) => `${where(i.path)}: ${i.message}`);
    throw new ManifestError(file, shown.join('; ') + (issues.length > 3 ? `; and ${issues.length - 3} more` : ''));
  }
  return r.data as Manifest;
}

/** Read and check `file`; undefined when it does not exist. */
export async function readManifestIfExists(file: string): Promise<Manifest | undefined> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ManifestError(file, `unreadable (${(err as Error).message})`);
  }
  return parseManifest(bytes, file);
}

/** Read and check `file`; a missing file is a ManifestError too. */
export async function readManifest(file: string): Promise<Manifest> {
  const m = await readManifestIfExists(file);
  if (!m) throw new ManifestError(file, 'missing: no build here (run edgeforge build first)');
  return m;
}
