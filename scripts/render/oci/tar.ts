// A deterministic ustar archive: entries sorted, directories before their files, owner 0:0, mtime 0, modes
// 0755/0644, nothing of the machine that made it. The same files give the same bytes (so the same digest) on
// any host, which is what lets `edgeforge publish` skip an unchanged site.
export interface TarFile {
  /** relative, "/"-separated, no ".." */
  path: string;
  bytes: Uint8Array;
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** name/prefix split of ustar: a name up to 100 bytes, or a prefix (up to 155) + name at a "/". */
function splitName(p: string): { name: string; prefix: string } {
  if (Buffer.byteLength(p) <= 100) return { name: p, prefix: '' };
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { name, prefix };
  }
  throw new Error(`${p}: path too long for a tar entry (ustar allows 255 bytes split at a "/")`);
}

function header(p: string, size: number, dir: boolean): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const { name, prefix } = splitName(p);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(dir ? 0o755 : 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(dir ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function checkPath(p: string): void {
  if (!p || p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`${p}: not a relative path inside the artifact`);
}

/** Every parent directory of the files, then the files, in byte order of their paths. */
export function tarArchive(files: TarFile[]): Buffer {
  const dirs = new Set<string>();
  for (const f of files) {
    checkPath(f.path);
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/') + '/');
  }
  const entries = [...[...dirs].map((d) => ({ path: d, bytes: undefined as Uint8Array | undefined })), ...files.map((f) => ({ path: f.path, bytes: f.bytes as Uint8Array | undefined }))];
  entries.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const out: Buffer[] = [];
  for (const e of entries) {
    if (!e.bytes) {
      out.push(header(e.path, 0, true));
      continue;
    }
    out.push(header(e.path, e.bytes.length, false), Buffer.from(e.bytes));
    const pad = (BLOCK - (e.bytes.length % BLOCK)) % BLOCK;
    if (pad) out.push(Buffer.alloc(pad, 0));
  }
  out.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(out);
}
