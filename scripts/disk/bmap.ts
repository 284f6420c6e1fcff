// bmaptool's block map format, version 2.0 (sha256 per range, and a checksum of the bmap file itself,
// computed with that field set to 64 ASCII zeros), as `bmaptool copy` reads it.
import { createHash } from 'node:crypto';
import type { Extent } from './block.ts';

export interface BmapRange {
  first: number; // block numbers, inclusive
  last: number;
  sha256: string;
}

export function bmapXml(imageSize: number, blockSize: number, ranges: BmapRange[]): string {
  const blocks = Math.ceil(imageSize / blockSize);
  const mapped = ranges.reduce((n, r) => n + r.last - r.first + 1, 0);
  const zeros = '0'.repeat(64);
  const lines = [
    '<?xml version="1.0" ?>',
    '<!-- Block map of a raw disk image written by edgeforge: only the listed blocks hold data',
    '     and need writing; bmaptool copy writes them and checks each range against its sha256. -->',
    '<bmap version="2.0">',
    `    <ImageSize> ${imageSize} </ImageSize>`,
    `    <BlockSize> ${blockSize} </BlockSize>`,
    `    <BlocksCount> ${blocks} </BlocksCount>`,
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
    '    <ChecksumType> sha256 </ChecksumType>',
    `    <BmapFileChecksum> ${zeros} </BmapFileChecksum>`,
    '    <BlockMap>',
    ...ranges.map((r) => `        <Range chksum="${r.sha256}"> ${r.first === r.last ? r.first : `${r.first}-${r.last}`} </Range>`),
    '    </BlockMap>',
    '</bmap>',
    '',
  ];
  const text = lines.join('\n');
  const sum = createHash('sha256').update(text).digest('hex');
  return text.replace(zeros, sum);
}

/** Ranges for block-aligned extents, hashing each range's bytes through `read` (clipped at the image end). */
export async function bmapRanges(extents: Extent[], blockSize: number, imageSize: number, read: (offset: number, length: number) => Promise<Uint8Array>): Promise<BmapRange[]> {
  const out: BmapRange[] = [];
  const piece = 4 * 1024 * 1024;
  for (const x of extents) {
    const h = createHash('sha256');
    const end = Math.min(imageSize, x.offset + x.length);
    for (let o = x.offset; o < end; o += piece) h.update(await read(o, Math.min(piece, end - o)));
    out.push({ first: x.offset / blockSize, last: Math.ceil(end / blockSize) - 1, sha256: h.digest('hex') });
  }
  return out;
}

/** Path of the bmap beside an image, the way bmaptool looks for it: disk.img -> disk.bmap. */
export function bmapPathFor(imagePath: string): string {
  return /\.(img|raw|bin)$/i.test(imagePath) ? imagePath.replace(/\.(img|raw|bin)$/i, '.bmap') : `${imagePath}.bmap`;
}
