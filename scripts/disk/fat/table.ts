// The file allocation table, held in memory (one copy), written back sector by sector to every FAT copy.
// Allocation is first-fit from cluster 2, ignoring FSInfo's hint, so the same inputs always get the same clusters.
import type { BlockDev } from '../block.ts';
import type { FatLayout } from './layout.ts';

/** No room left in the filesystem (the callers grow the image or say how to). */
export class FatFullError extends Error {}

export class FatTable {
  private readonly dirty = new Set<number>(); // sector indexes within one FAT
  private constructor(
    private readonly dev: BlockDev,
    private readonly L: FatLayout,
    private readonly bytes: Uint8Array,
  ) {}

  static async load(dev: BlockDev, L: FatLayout): Promise<FatTable> {
    const copy = L.activeFat ?? 0;
    return new FatTable(dev, L, await dev.read(L.fatOffset + copy * L.fatSectors * L.bytesPerSector, L.fatSectors * L.bytesPerSector));
  }

  /** highest valid cluster number */
  get maxCluster(): number {
    return this.L.clusterCount + 1;
  }
  get eoc(): number {
    return this.L.type === 12 ? 0xfff : this.L.type === 16 ? 0xffff : 0x0fffffff;
  }
  isEnd(v: number): boolean {
    return v >= (this.L.type === 12 ? 0xff8 : this.L.type === 16 ? 0xfff8 : 0x0ffffff8);
  }

  get(n: number): number {
    const b = this.bytes;
    switch (this.L.type) {
      case 12: {
        const o = n + (n >> 1);
        const v = b[o] | (b[o + 1] << 8);
        return n & 1 ? v >> 4 : v & 0xfff;
      }
      case 16:
        return b[2 * n] | (b[2 * n + 1] << 8);
      case 32:
        return (b[4 * n] | (b[4 * n + 1] << 8) | (b[4 * n + 2] << 16) | (b[4 * n + 3] << 24)) & 0x0fffffff;
    }
  }

  set(n: number, v: number): void {
    if (n < 2 || n > this.maxCluster) throw new RangeError(`cluster ${n} out of range`);
    const b = this.bytes;
    const mark = (o: number, len: number) => {
      for (let i = o; i < o + len; i++) this.dirty.add(Math.floor(i / this.L.bytesPerSector));
    };
    switch (this.L.type) {
      case 12: {
        const o = n + (n >> 1);
        if (n & 1) {
          b[o] = (b[o] & 0x0f) | ((v << 4) & 0xf0);
          b[o + 1] = (v >> 4) & 0xff;
        } else {
          b[o] = v & 0xff;
          b[o + 1] = (b[o + 1] & 0xf0) | ((v >> 8) & 0x0f);
        }
        mark(o, 2);
        break;
      }
      case 16:
        b[2 * n] = v & 0xff;
        b[2 * n + 1] = (v >> 8) & 0xff;
        mark(2 * n, 2);
        break;
      case 32: {
        const keep = b[4 * n + 3] & 0xf0; // the top 4 bits are reserved and must be preserved
        b[4 * n] = v & 0xff;
        b[4 * n + 1] = (v >> 8) & 0xff;
        b[4 * n + 2] = (v >> 16) & 0xff;
        b[4 * n + 3] = keep | ((v >> 24) & 0x0f);
        mark(4 * n, 4);
        break;
      }
    }
  }

  chain(first: number): number[] {
    const out: number[] = [];
    let c = first;
    while (c >= 2 && c <= this.maxCluster) {
      if (out.length > this.L.clusterCount) throw new Error(`cluster chain from ${first} loops`);
      out.push(c);
      const next = this.get(c);
      if (this.isEnd(next)) break;
      c = next;
    }
    return out;
  }

  /** Takes `count` free clusters, lowest numbers first, and marks each end-of-chain (callers link them). */
  allocate(count: number): number[] {
    const out: number[] = [];
    for (let c = 2; c <= this.maxCluster && out.length < count; c++) {
      if (this.get(c) === 0) out.push(c);
    }
    if (out.length < count) throw new FatFullError(`FAT filesystem full: need ${count} clusters, ${out.length} free`);
    for (const c of out) this.set(c, this.eoc);
    return out;
  }

  link(clusters: number[]): void {
    for (let i = 0; i < clusters.length; i++) this.set(clusters[i], i + 1 < clusters.length ? clusters[i + 1] : this.eoc);
  }

  free(clusters: number[]): void {
    for (const c of clusters) this.set(c, 0);
  }

  countFree(): number {
    let n = 0;
    for (let c = 2; c <= this.maxCluster; c++) if (this.get(c) === 0) n++;
    return n;
  }

  firstFree(): number {
    for (let c = 2; c <= this.maxCluster; c++) if (this.get(c) === 0) return c;
    return 0xffffffff;
  }

  async flush(): Promise<void> {
    const bps = this.L.bytesPerSector;
    for (const s of [...this.dirty].sort((a, b) => a - b)) {
      const sec = this.bytes.subarray(s * bps, (s + 1) * bps);
      for (let f = 0; f < this.L.numFats; f++) {
        if (this.L.activeFat !== null && f !== this.L.activeFat) continue; // mirroring off: only the active copy
        await this.dev.write(this.L.fatOffset + (f * this.L.fatSectors + s) * bps, sec);
      }
    }
    this.dirty.clear();
  }
}
