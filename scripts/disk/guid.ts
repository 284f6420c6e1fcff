// GUIDs as GPT stores them: the first three fields little-endian, the rest as bytes.
import { createHash } from 'node:crypto';

export function guidToString(b: Uint8Array): string {
  const h = (i: number, n: number, le: boolean) => {
    const bytes = [...b.subarray(i, i + n)];
    if (le) bytes.reverse();
    return bytes.map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`.toUpperCase();
}

export function guidFromString(s: string): Uint8Array {
  const hex = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${s}`);
  const raw = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  out.set([...raw.subarray(0, 4)].reverse(), 0);
  out.set([...raw.subarray(4, 6)].reverse(), 4);
  out.set([...raw.subarray(6, 8)].reverse(), 6);
  out.set(raw.subarray(8, 16), 8);
  return out;
}

/** A stable "random-looking" v4-shaped GUID from a seed: same inputs, same partition GUID. */
export function guidFromSeed(seed: string): Uint8Array {
  const b = Buffer.from(createHash('sha256').update(seed).digest().subarray(0, 16));
  b[7] = (b[7] & 0x0f) | 0x40; // version 4 (byte 7 is the high byte of the LE third field)
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  return b;
}

export const GPT_TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  basicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  linuxRootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
} as const;
