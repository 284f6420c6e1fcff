// The per-device delta file: the blocks of the base that differ for one device.
//
//   header (64 bytes, little-endian)
//     0  magic  "EFDELTA\0"           8
//     8  version = 1                  u32
//    12  block size                   u32
//    16  base image size (bytes)      u64
//    24  extent count                 u32
//    28  reserved = 0                 u32
//    32  sha256 of the raw base image 32
//   extents: count x (offset u64, length u64), sorted, non-overlapping
//   data: the extents' bytes, concatenated in order
//   trailer: sha256 of everything above (32 bytes)
//
// No timestamps, no names: same base + same changes -> same bytes.
import { createHash } from 'node:crypto';
import type { Extent } from './block.ts';

export const DELTA_MAGIC = 'EFDELTA\0';
export const DELTA_VERSION = 1;
const HEADER = 64;

export interface Delta {
  blockSize: number;
  baseSize: number;
  baseSha256: string;
  extents: Extent[];
  data: Uint8Array[];
}

export function encodeDelta(d: Delta): Uint8Array {
  if (d.extents.length !== d.data.length) throw new Error('delta: extents and data differ in count');
  const dataLen = d.data.reduce((n, x) => n + x.length, 0);
  const out = Buffer.alloc(HEADER + d.extents.length * 16 + dataLen + 32);
  out.write(DELTA_MAGIC, 0, 'latin1');
  out.writeUInt32LE(DELTA_VERSION, 8);
  out.writeUInt32LE(d.blockSize, 12);
  out.writeBigUInt64LE(BigInt(d.baseSize), 16);
  out.writeUInt32LE(d.extents.length, 24);
  out.write(d.baseSha256, 32, 'hex');
  let o = HEADER;
  let prevEnd = 0;
  d.extents.forEach((x, i) => {
    if (x.offset < prevEnd || x.length !== d.data[i].length || x.offset + x.length > d.baseSize) {
      throw new Error(`delta: extent ${i} (${x.offset}+${x.length}) is out of order, out of range or mis-sized`);
    }
    prevEnd = x.offset + x.length;
    out.writeBigUInt64LE(BigInt(x.offset), o);
    out.writeBigUInt64LE(BigInt(x.length), o + 8);
    o += 16;
  });
  for (const x of d.data) {
    out.set(x, o);
    o += x.length;
  }
  createHash('sha256').update(out.subarray(0, o)).digest().copy(out, o);
  return out;
}

export function decodeDelta(bytes: Uint8Array, where = 'delta'): Delta {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < HEADER + 32 || b.toString('latin1', 0, 8) !== DELTA_MAGIC) throw new Error(`${where}: not an edgeforge disk delta`);
  const version = b.readUInt32LE(8);
  if (version !== DELTA_VERSION) throw new Error(`${where}: delta format version ${version} is not supported (want ${DELTA_VERSION})`);
  const body = b.subarray(0, b.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(b.subarray(b.length - 32))
  )
    throw new Error(`${where}: delta is corrupt (checksum mismatch)`);
  const count = b.readUInt32LE(24);
  const baseSize = Number(b.readBigUInt64LE(16));
  const extents: Extent[] = [];
  let o = HEADER;
  let dataLen = 0;
  for (let i = 0; i < count; i++) {
    const x = { offset: Number(b.readBigUInt64LE(o)), length: Number(b.readBigUInt64LE(o + 8)) };
    if (x.offset + x.length > baseSize) throw new Error(`${where}: extent ${i} beyond the base image`);
    extents.push(x);
    dataLen += x.length;
    o += 16;
  }
  if (o + dataLen !== body.length) throw new Error(`${where}: delta length does not match its extents`);
  const data: Uint8Array[] = [];
  for (const x of extents) {
    data.push(b.subarray(o, o + x.length));
    o += x.length;
  }
  return { blockSize: b.readUInt32LE(12), baseSize, baseSha256: b.toString('hex', 32, 64), extents, data };
}
