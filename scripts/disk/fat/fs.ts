// A FAT12/16/32 filesystem on a BlockDev: list, read, write (replace in place / create), mkdir, remove.
// Writes touch only the clusters, directory slots, FAT sectors and FSInfo they must, so other files in the
// partition keep their bytes and their clusters. Timestamps come from the epoch given at open.
import type { BlockDev } from '../block.ts';
import { ATTR, decodeDir, encodeEntry, shortEntry, shortNamesOf, type DirEntry } from './dirent.ts';
import { parseBootSector, type FatLayout } from './layout.ts';
import { displayShortName } from './names.ts';
import { FatFullError, FatTable } from './table.ts';
import { fatStamp, type FatStamp } from './time.ts';

interface Dir {
  /** first cluster, 0 for the FAT12/16 fixed root */
  cluster: number;
  chain: number[];
  bytes: Uint8Array;
}

export interface FatFileInfo {
  path: string;
  size: number;
  isDir: boolean;
}

export class FatFs {
  private readonly stamp: FatStamp;
  private constructor(
    readonly dev: BlockDev,
    readonly layout: FatLayout,
    private readonly fat: FatTable,
    epoch: number,
  ) {
    this.stamp = fatStamp(epoch);
  }

  static async open(dev: BlockDev, opts: { epoch: number }): Promise<FatFs> {
    const layout = parseBootSector(await dev.read(0, 512));
    if (layout.totalSectors * layout.bytesPerSector > dev.size) {
      throw new Error(`FAT filesystem claims ${layout.totalSectors} sectors but its partition holds ${dev.size} bytes`);
    }
    return new FatFs(dev, layout, await FatTable.load(dev, layout), opts.epoch);
  }

  private clusterOffset(c: number): number {
    return this.layout.dataOffset + (c - 2) * this.layout.clusterSize;
  }

  /** Contiguous runs of a chain, so reads and writes are one call per run. */
  private runs(chain: number[]): [number, number][] {
    const out: [number, number][] = [];
    for (const c of chain) {
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === c) last[1]++;
      else out.push([c, 1]);
    }
    return out;
  }

  private async readChain(chain: number[]): Promise<Uint8Array> {
    const cs = this.layout.clusterSize;
    const out = Buffer.alloc(chain.length * cs);
    let pos = 0;
    for (const [c, n] of this.runs(chain)) {
      out.set(await this.dev.read(this.clusterOffset(c), n * cs), pos);
      pos += n * cs;
    }
    return out;
  }

  private async writeChain(chain: number[], data: Uint8Array): Promise<void> {
    const cs = this.layout.clusterSize;
    const padded = Buffer.alloc(chain.length * cs); // the tail of the last cluster is zeroed: no stale bytes
    padded.set(data.subarray(0, padded.length));
    let pos = 0;
    for (const [c, n] of this.runs(chain)) {
      await this.dev.write(this.clusterOffset(c), padded.subarray(pos, pos + n * cs));
      pos += n * cs;
    }
  }

  private async loadDir(cluster: number): Promise<Dir> {
    const L = this.layout;
    if (cluster === 0 && L.type !== 32) return { cluster: 0, chain: [], bytes: await this.dev.read(L.rootDirOffset, L.rootEntries * 32) };
    const first = cluster === 0 ? L.rootCluster : cluster;
    const chain = this.fat.chain(first);
    return { cluster: first, chain, bytes: await this.readChain(chain) };
  }

  private async saveDir(d: Dir): Promise<void> {
    if (d.cluster === 0) await this.dev.write(this.layout.rootDirOffset, d.bytes);
    else await this.writeChain(d.chain, d.bytes);
  }

  private find(d: Dir, name: string): DirEntry | undefined {
    const want = name.toUpperCase();
    return decodeDir(d.bytes).entries.find((e) => e.name.toUpperCase() === want || displayShortName(Buffer.from(e.shortRaw, 'latin1'), 0) === want);
  }

  private async walkTo(parts: string[], create: boolean): Promise<Dir> {
    let d = await this.loadDir(0);
    for (const p of parts) {
      let e = this.find(d, p);
      if (!e) {
        if (!create) throw new Error(`no such directory: ${parts.join('/')}`);
        e = await this.mkdirIn(d, p);
      }
      if (!e.isDir) throw new Error(`not a directory: ${p} in ${parts.join('/')}`);
      d = await this.loadDir(e.firstCluster);
    }
    return d;
  }

  private split(path: string): { dirs: string[]; name: string } {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw new Error(`bad path in FAT filesystem: ${path}`);
    return { dirs: parts.slice(0, -1), name: parts[parts.length - 1] };
  }

  /** Writes `slots` into the first run of free slots, growing a cluster-chained directory if it must. */
  private async insert(d: Dir, slots: Uint8Array): Promise<number> {
    const k = slots.length / 32;
    for (;;) {
      let run = 0;
      for (let i = 0; i * 32 < d.bytes.length; i++) {
        const b = d.bytes[i * 32];
        run = b === 0x00 || b === 0xe5 ? run + 1 : 0;
        if (run === k) {
          const start = i - k + 1;
          d.bytes.set(slots, start * 32);
          await this.saveDir(d);
          return start + k - 1;
        }
      }
      if (d.cluster === 0) throw new FatFullError('FAT root directory is full');
      const [c] = this.fat.allocate(1);
      d.chain.push(c);
      this.fat.link(d.chain);
      d.bytes = Buffer.concat([d.bytes, Buffer.alloc(this.layout.clusterSize)]);
    }
  }

  private async mkdirIn(parent: Dir, name: string): Promise<DirEntry> {
    const [c] = this.fat.allocate(1);
    const body = Buffer.alloc(this.layout.clusterSize);
    body.set(shortEntry('.          ', ATTR.dir, 0, c, 0, this.stamp), 0);
    // '..' of a first-level directory points at cluster 0, even on FAT32 (the spec says so; fsck checks it)
    const up = parent.cluster === this.layout.rootCluster && this.layout.type === 32 ? 0 : parent.cluster;
    body.set(shortEntry('..         ', ATTR.dir, 0, up, 0, this.stamp), 32);
    await this.writeChain([c], body);
    await this.insert(parent, encodeEntry(name, shortNamesOf(parent.bytes), ATTR.dir, c, 0, this.stamp));
    return this.find(parent, name)!;
  }

  async mkdir(path: string): Promise<void> {
    const { dirs, name } = this.split(path);
    await this.walkTo([...dirs, name], true);
  }

  async list(path = ''): Promise<DirEntry[]> {
    const parts = path.split('/').filter(Boolean);
    return decodeDir((await this.walkTo(parts, false)).bytes).entries;
  }

  async label(): Promise<string | null> {
    return decodeDir((await this.loadDir(0)).bytes).label;
  }

  async stat(path: string): Promise<DirEntry | null> {
    const { dirs, name } = this.split(path);
    try {
      return this.find(await this.walkTo(dirs, false), name) ?? null;
    } catch {
      return null;
    }
  }

  async readFile(path: string): Promise<Uint8Array> {
    const e = await this.stat(path);
    if (!e || e.isDir) throw new Error(`no such file in FAT filesystem: ${path}`);
    if (e.size === 0) return new Uint8Array(0);
    const chain = this.fat.chain(e.firstCluster);
    if (chain.length * this.layout.clusterSize < e.size) throw new Error(`${path}: cluster chain shorter than the file size`);
    return (await this.readChain(chain)).subarray(0, e.size);
  }

  /**
   * Creates or replaces a file. A replaced file keeps its directory entry and as many of its own clusters as it
   * still needs; extra clusters come first-fit, surplus ones are freed. Missing parent directories are created.
   */
  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const { dirs, name } = this.split(path);
    const d = await this.walkTo(dirs, true);
    const need = Math.ceil(data.length / this.layout.clusterSize);
    const e = this.find(d, name);
    if (e?.isDir) throw new Error(`${path} is a directory in the FAT filesystem`);
    let chain: number[];
    if (e) {
      const old = e.firstCluster ? this.fat.chain(e.firstCluster) : [];
      if (old.length >= need) {
        this.fat.free(old.slice(need));
        chain = old.slice(0, need);
      } else chain = old.concat(this.fat.allocate(need - old.length));
    } else chain = this.fat.allocate(need);
    if (chain.length) this.fat.link(chain);
    await this.writeChain(chain, data);
    const first = chain[0] ?? 0;
    if (e) {
      const o = e.slot * 32;
      const b = Buffer.from(d.bytes.buffer, d.bytes.byteOffset, d.bytes.length);
      b[o + 11] |= ATTR.archive;
      b.writeUInt16LE(this.stamp.date, o + 18);
      b.writeUInt16LE((first >>> 16) & 0xffff, o + 20);
      b.writeUInt16LE(this.stamp.time, o + 22);
      b.writeUInt16LE(this.stamp.date, o + 24);
      b.writeUInt16LE(first & 0xffff, o + 26);
      b.writeUInt32LE(data.length, o + 28);
      await this.saveDir(d);
    } else {
      await this.insert(d, encodeEntry(name, shortNamesOf(d.bytes), ATTR.archive, first, data.length, this.stamp));
    }
  }

  /**
   * Creates (or replaces) a file of `size` bytes whose content comes from `source(offset, length)`, written run
   * by run in pieces of at most `chunk` bytes: a 200 MB K3s image tarball never has to sit in memory whole.
   */
  async writeFileFrom(path: string, size: number, source: (offset: number, length: number) => Promise<Uint8Array>, chunk = 8 << 20): Promise<void> {
    if (await this.stat(path)) await this.remove(path);
    const { dirs, name } = this.split(path);
    const d = await this.walkTo(dirs, true);
    const cs = this.layout.clusterSize;
    const chain = this.fat.allocate(Math.ceil(size / cs));
    if (chain.length) this.fat.link(chain);
    const step = Math.max(cs, Math.floor(chunk / cs) * cs);
    let pos = 0; // file offset of the run's first cluster
    for (const [c, n] of this.runs(chain)) {
      for (let k = 0; k < n * cs; k += step) {
        const len = Math.min(step, n * cs - k);
        const want = Math.max(0, Math.min(len, size - (pos + k)));
        const buf = Buffer.alloc(len); // the tail of the last cluster stays zero
        if (want > 0) {
          const got = await source(pos + k, want);
          if (got.length !== want) throw new Error(`${path}: source gave ${got.length} bytes at ${pos + k}, expected ${want}`);
          buf.set(got, 0);
        }
        await this.dev.write(this.clusterOffset(c) + k, buf);
      }
      pos += n * cs;
    }
    await this.insert(d, encodeEntry(name, shortNamesOf(d.bytes), ATTR.archive, chain[0] ?? 0, size, this.stamp));
  }

  /** Removes a file, or a directory with everything under it. Returns false if it did not exist. */
  async remove(path: string): Promise<boolean> {
    const { dirs, name } = this.split(path);
    let d: Dir;
    try {
      d = await this.walkTo(dirs, false);
    } catch {
      return false;
    }
    const e = this.find(d, name);
    if (!e) return false;
    if (e.isDir) for (const child of await this.list([...dirs, name].join('/'))) await this.remove([...dirs, name, child.name].join('/'));
    if (e.firstCluster) this.fat.free(this.fat.chain(e.firstCluster));
    for (let s = e.firstSlot; s <= e.slot; s++) d.bytes[s * 32] = 0xe5;
    await this.saveDir(d);
    return true;
  }

  /** Every file and directory, depth-first in directory order. */
  async walk(path = ''): Promise<FatFileInfo[]> {
    const out: FatFileInfo[] = [];
    for (const e of await this.list(path)) {
      const p = path ? `${path}/${e.name}` : e.name;
      out.push({ path: p, size: e.size, isDir: e.isDir });
      if (e.isDir) out.push(...(await this.walk(p)));
    }
    return out;
  }

  /** Writes the changed FAT sectors to every FAT copy and brings FAT32's FSInfo counters up to date. */
  async flush(): Promise<void> {
    await this.fat.flush();
    const L = this.layout;
    if (L.type !== 32 || !L.fsInfoSector || L.fsInfoSector === 0xffff) return;
    const off = L.fsInfoSector * L.bytesPerSector;
    const sec = Buffer.from(await this.dev.read(off, 512));
    if (sec.readUInt32LE(0) !== 0x41615252 || sec.readUInt32LE(484) !== 0x61417272) return;
    const free = this.fat.countFree();
    const next = this.fat.firstFree();
    if (sec.readUInt32LE(488) === free && sec.readUInt32LE(492) === next) return;
    sec.writeUInt32LE(free, 488);
    sec.writeUInt32LE(next, 492);
    await this.dev.write(off, sec);
  }
}
