// Directory entries: decoding a directory's bytes into named entries (long names assembled and checked),
// and encoding a name into its LFN + short entry slots.
import { displayShortName, exactShortName, generateShortName, lfnChecksum, validateLongName } from './names.ts';
import type { FatStamp } from './time.ts';

export const ATTR = { readOnly: 0x01, hidden: 0x02, system: 0x04, volumeId: 0x08, dir: 0x10, archive: 0x20, lfn: 0x0f } as const;

export interface DirEntry {
  name: string;
  shortRaw: string; // 11 chars
  attr: number;
  firstCluster: number;
  size: number;
  /** slot index (32-byte units) of the short entry, and of the first slot of the whole entry (LFN or short) */
  slot: number;
  firstSlot: number;
  isDir: boolean;
}

export function decodeDir(bytes: Uint8Array): { entries: DirEntry[]; label: string | null } {
  const entries: DirEntry[] = [];
  let label: string | null = null;
  let lfn: { parts: string[]; sum: number; expect: number; first: number } | null = null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i * 32 < bytes.length; i++) {
    const e = bytes.subarray(i * 32, i * 32 + 32);
    if (e[0] === 0x00) break; // end of directory
    if (e[0] === 0xe5) {
      lfn = null;
      continue;
    }
    const attr = e[11];
    if ((attr & 0x3f) === ATTR.lfn) {
      const ord = e[0];
      const seq = ord & 0x1f;
      if (ord & 0x40) lfn = { parts: [], sum: e[13], expect: seq, first: i };
      if (!lfn || seq !== lfn.expect || e[13] !== lfn.sum) {
        lfn = null;
        continue;
      }
      const chars: number[] = [];
      for (const [o, n] of [
        [1, 5],
        [14, 6],
        [28, 2],
      ] as const)
        for (let k = 0; k < n; k++) chars.push(dv.getUint16(i * 32 + o + 2 * k, true));
      const end = chars.indexOf(0);
      lfn.parts[seq - 1] = String.fromCharCode(...(end >= 0 ? chars.slice(0, end) : chars));
      lfn.expect = seq - 1;
      continue;
    }
    const raw = e.subarray(0, 11);
    if (attr & ATTR.volumeId) {
      if (!(attr & ATTR.dir)) label = Buffer.from(raw).toString('latin1').trimEnd();
      lfn = null;
      continue;
    }
    const shortRaw = Buffer.from(raw).toString('latin1');
    if (shortRaw === '.          ' || shortRaw === '..         ') {
      lfn = null;
      continue;
    }
    const long = lfn && lfn.expect === 0 && lfn.sum === lfnChecksum(raw) ? lfn.parts.join('') : null;
    entries.push({
      name: long ?? displayShortName(raw, e[12]),
      shortRaw,
      attr,
      firstCluster: (dv.getUint16(i * 32 + 20, true) << 16) | dv.getUint16(i * 32 + 26, true),
      size: dv.getUint32(i * 32 + 28, true),
      slot: i,
      firstSlot: long ? lfn!.first : i,
      isDir: (attr & ATTR.dir) !== 0,
    });
    lfn = null;
  }
  return { entries, label };
}

/** Every short name in use in a directory (including deleted-free ones is unnecessary: only live entries clash). */
export function shortNamesOf(bytes: Uint8Array): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i * 32 < bytes.length; i++) {
    const e = bytes.subarray(i * 32, i * 32 + 32);
    if (e[0] === 0) break;
    if (e[0] === 0xe5 || (e[11] & 0x3f) === ATTR.lfn) continue;
    out.add(Buffer.from(e.subarray(0, 11)).toString('latin1'));
  }
  return out;
}

export function shortEntry(raw11: string, attr: number, caseBits: number, firstCluster: number, size: number, st: FatStamp): Uint8Array {
  const b = Buffer.alloc(32);
  b.write(raw11, 0, 11, 'latin1');
  b[11] = attr;
  b[12] = caseBits;
  b[13] = st.tenths;
  b.writeUInt16LE(st.time, 14);
  b.writeUInt16LE(st.date, 16);
  b.writeUInt16LE(st.date, 18);
  b.writeUInt16LE((firstCluster >>> 16) & 0xffff, 20);
  b.writeUInt16LE(st.time, 22);
  b.writeUInt16LE(st.date, 24);
  b.writeUInt16LE(firstCluster & 0xffff, 26);
  b.writeUInt32LE(size, 28);
  return b;
}

/**
 * Slots for a new entry: LFN slots (only when the name is not exactly an upper-case 8.3 name) followed by the
 * short entry. Names that are 8.3 in one case per part also get NT case bits, so short-name-only readers agree.
 */
export function encodeEntry(name: string, taken: Set<string>, attr: number, firstCluster: number, size: number, st: FatStamp): Uint8Array {
  validateLongName(name);
  const exact = exactShortName(name);
  const raw = exact && !taken.has(exact.raw) ? exact.raw : generateShortName(name, taken);
  const caseBits = exact && raw === exact.raw ? exact.caseBits : 0;
  const short = shortEntry(raw, attr, caseBits, firstCluster, size, st);
  if (exact && raw === exact.raw && caseBits === 0) return short;
  const units: number[] = [...name].flatMap((ch) => {
    const cp = ch.codePointAt(0)!;
    if (cp > 0xffff) throw new Error(`FAT long names are UCS-2; cannot store ${JSON.stringify(name)}`);
    return [cp];
  });
  const n = Math.ceil(units.length / 13);
  const padded = [...units, ...(units.length % 13 ? [0] : [])];
  while (padded.length < n * 13) padded.push(0xffff);
  const sum = lfnChecksum(Buffer.from(raw, 'latin1'));
  const out = Buffer.alloc((n + 1) * 32);
  for (let seq = n; seq >= 1; seq--) {
    const o = (n - seq) * 32;
    out[o] = seq | (seq === n ? 0x40 : 0);
    out[o + 11] = ATTR.lfn;
    out[o + 13] = sum;
    const chunk = padded.slice((seq - 1) * 13, seq * 13);
    let k = 0;
    for (const [off, len] of [
      [1, 5],
      [14, 6],
      [28, 2],
    ] as const)
      for (let j = 0; j < len; j++) out.writeUInt16LE(chunk[k++], o + off + 2 * j);
  }
  out.set(short, n * 32);
  return out;
}
