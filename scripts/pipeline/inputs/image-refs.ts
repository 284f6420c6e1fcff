// Which images an image archive says it holds, read from the archive itself: a docker-archive's manifest.json
// (RepoTags, what `docker save` and `skopeo copy … docker-archive:FILE:IMAGE` write) or an OCI layout's
// index.json (the io.containerd.image.name / org.opencontainers.image.ref.name annotations, what containerd's
// import names images by). The build checks the pinned reference is among them: an archive of another image
// would be imported and the kubelet would still try to pull the missing one. Plain and gzip tars are read;
// other compressions (zstd, lz4, bzip2) are not inspected here (Node 20 has no decoder for them) and say so.
import { promises as fs } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** `undefined`: this compression is not inspected. Otherwise the full references the archive names. */
export async function archiveImageRefs(file: string): Promise<string[] | undefined> {
  let tar: Buffer;
  if (/\.(tar\.gz|tgz)$/.test(file)) tar = gunzipSync(await fs.readFile(file));
  else if (/\.tar$/.test(file)) tar = await fs.readFile(file);
  else return undefined;
  const entries = tarEntries(tar);
  const refs: string[] = [];
  const manifest = entries.get('manifest.json');
  if (manifest) {
    for (const m of JSON.parse(manifest.toString('utf8')) as { RepoTags?: string[] }[]) refs.push(...(m.RepoTags ?? []).map(normalizeRef));
  }
  const index = entries.get('index.json');
  if (index) {
    for (const m of (JSON.parse(index.toString('utf8')) as { manifests?: { annotations?: Record<string, string> }[] }).manifests ?? []) {
      const a = m.annotations ?? {};
      for (const k of ['io.containerd.image.name', 'org.opencontainers.image.ref.name']) if (a[k]) refs.push(a[k].includes('/') ? normalizeRef(a[k]) : a[k]);
    }
  }
  return refs;
}

/** containerd's naming: a reference without a registry is docker.io's, a one-part name is docker.io/library's. */
export function normalizeRef(ref: string): string {
  const first = ref.split('/')[0];
  const qualified = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (qualified) return ref;
  return ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
}

/** Does `refs` (from archiveImageRefs) hold `image`? An OCI ref.name may be the tag alone. */
export function archiveHolds(refs: string[], image: string): boolean {
  const tag = /:([^:/@]+)$/.exec(image)?.[1];
  return refs.includes(normalizeRef(image)) || (tag !== undefined && refs.includes(tag));
}

/** The regular files of a ustar/GNU tar by name (with ./ stripped); GNU long names are followed. */
function tarEntries(tar: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let longName: string | undefined;
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, n: number) =>
      h
        .subarray(a, a + n)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 48);
    const prefix = field(345, 155);
    const body = tar.subarray(off + 512, off + 512 + size);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if (type === '0' || type === '\0') out.set(name.replace(/^\.\//, ''), body);
    name = '';
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
