// 8.3 short names, their numeric tails, and the long-file-name checksum.
const SHORT_OK = /^[A-Z0-9!#$%&'()\-@^_`{}~]$/;
const LONG_BAD = /[\x00-\x1f"*/:<>?\\|\x7f]/;

export function validateLongName(name: string): void {
  if (!name || name === '.' || name === '..' || name.length > 255 || LONG_BAD.test(name) || /[ .]$/.test(name)) {
    throw new Error(`invalid FAT file name: ${JSON.stringify(name)}`);
  }
}

function split(name: string): [string, string] {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [name, ''];
}

function shortChars(s: string): { out: string; lossy: boolean } {
  let out = '';
  let lossy = false;
  for (const ch of s.toUpperCase()) {
    if (ch === ' ' || ch === '.') {
      lossy = true;
      continue;
    }
    if (SHORT_OK.test(ch)) out += ch;
    else {
      out += '_';
      lossy = true;
    }
  }
  return { out, lossy };
}

/** The 11-byte short name if `name` is exactly representable as 8.3 in one case per part, with NT case bits. */
export function exactShortName(name: string): { raw: string; caseBits: number } | null {
  const [base, ext] = split(name);
  if (!base || base.length > 8 || ext.length > 3 || name.split('.').length > 2) return null;
  const b = shortChars(base);
  const e = shortChars(ext);
  if (b.lossy || e.lossy) return null;
  const oneCase = (s: string) => s === s.toUpperCase() || s === s.toLowerCase();
  if (!oneCase(base) || !oneCase(ext)) return null;
  const caseBits = (base !== base.toUpperCase() ? 0x08 : 0) | (ext !== ext.toUpperCase() ? 0x10 : 0);
  return { raw: b.out.padEnd(8) + e.out.padEnd(3), caseBits };
}

/** A unique short name for a long name: BASIS~N.EXT, N the lowest free tail (stable for a given directory). */
export function generateShortName(name: string, taken: Set<string>): string {
  const [base, ext] = split(name.replace(/^\.+/, ''));
  const b = shortChars(base).out || '_';
  const e = shortChars(ext).out.slice(0, 3);
  for (let n = 1; n < 1_000_000; n++) {
    const tail = `~${n}`;
    const raw = (b.slice(0, 8 - tail.length) + tail).padEnd(8) + e.padEnd(3);
    if (!taken.has(raw)) return raw;
  }
  throw new Error(`no free short name for ${name}`);
}

export function lfnChecksum(raw11: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + raw11[i]) & 0xff;
  return sum;
}

/** Short name as shown to users, honouring the NT lower-case bits. */
export function displayShortName(raw: Uint8Array, caseBits: number): string {
  const s = Buffer.from(raw).toString('latin1');
  let base = s.slice(0, 8).trimEnd();
  let ext = s.slice(8, 11).trimEnd();
  if (base.charCodeAt(0) === 0x05) base = '\xe5' + base.slice(1);
  if (caseBits & 0x08) base = base.toLowerCase();
  if (caseBits & 0x10) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}
