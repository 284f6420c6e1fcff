// Reading a guest's disk image from the host after it powered off: the partition table (sfdisk --json),
// ext4 files (debugfs on the partition, addressed by offset), FAT files (mtools at an offset) and LUKS
// headers (cryptsetup luksDump on a copy of the header). Nothing here writes the image.
import { FIRMWARE } from './ab.ts';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { $ } from 'zx';

$.verbose = false;

/** a command's stdout as bytes (zx decodes to text; file contents must stay binary) */
function runBytes(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout as Buffer });
    });
  });
}

export interface Part {
  number: number;
  start: number; // bytes
  size: number; // bytes
  type: string;
  uuid: string;
  name: string;
}

export async function partitions(img: string): Promise<Part[]> {
  const r = await $`sfdisk --json ${img}`;
  const t = JSON.parse(r.stdout).partitiontable;
  const sector = t.sectorsize ?? 512;
  return (t.partitions as { node: string; start: number; size: number; type: string; uuid?: string; name?: string }[]).map((p) => ({
    number: Number(/(\d+)$/.exec(p.node)![1]),
    start: p.start * sector,
    size: p.size * sector,
    type: p.type.toUpperCase(),
    uuid: (p.uuid ?? '').toUpperCase(),
    name: p.name ?? '',
  }));
}

/**
 * An ext4 partition read through debugfs. debugfs takes no offset, so the partition is copied out (sparse,
 * a few seconds) once; debugfs does not replay the journal, so the guest must have been powered off cleanly.
 */
export class Ext4Reader {
  private constructor(
    readonly file: string,
    private readonly tmp: string,
  ) {}

  static async open(img: string, part: Part): Promise<Ext4Reader> {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-e2e-ext4-'));
    const file = path.join(tmp, 'root.ext4');
    await $`dd if=${img} of=${file} bs=1M iflag=skip_bytes,count_bytes skip=${part.start} count=${part.size} conv=sparse status=none`;
    return new Ext4Reader(file, tmp);
  }

  /** the file's bytes, or null when it does not exist */
  async read(p: string): Promise<Buffer | null> {
    if (!(await this.exists(p))) return null;
    const r = await runBytes('debugfs', ['-R', `cat "${p}"`, this.file]);
    return r.stdout;
  }

  async text(p: string): Promise<string | null> {
    const b = await this.read(p);
    return b === null ? null : b.toString('utf8');
  }

  async exists(p: string): Promise<boolean> {
    const r = await $`debugfs -R ${`stat "${p}"`} ${this.file}`.nothrow();
    return !/not found|File not found/i.test(r.stderr) && /Inode:/.test(r.stdout);
  }

  /** mode bits (e.g. 0o600) and owner, or null */
  async stat(p: string): Promise<{ mode: number; uid: number; gid: number; type: string } | null> {
    const r = await $`debugfs -R ${`stat "${p}"`} ${this.file}`.nothrow();
    const m = /Type:\s*(\S+)\s+Mode:\s*(\d+)/.exec(r.stdout);
    const u = /User:\s*(\d+)\s+Group:\s*(\d+)/.exec(r.stdout);
    if (!m || !u) return null;
    return { type: m[1], mode: parseInt(m[2], 8), uid: Number(u[1]), gid: Number(u[2]) };
  }

  async ls(dir: string): Promise<string[] | null> {
    const r = await $`debugfs -R ${`ls -p "${dir}"`} ${this.file}`.nothrow();
    if (/not found/i.test(r.stderr)) return null;
    // lines look like /inode/mode/uid/gid/name/size/
    return r.stdout
      .split('\n')
      .map((l) => l.split('/'))
      .filter((f) => f.length >= 7)
      .map((f) => f[5])
      .filter((n) => n && n !== '.' && n !== '..');
  }

  /** a directory tree copied out (for grepping many files at once) */
  async dump(dir: string): Promise<string | null> {
    if (!(await this.exists(dir))) return null;
    const out = path.join(this.tmp, `dump-${Math.random().toString(36).slice(2)}`);
    await fs.mkdir(out);
    await $`debugfs -R ${`rdump "${dir}" "${out}"`} ${this.file}`.nothrow();
    return path.join(out, path.basename(dir));
  }

  async close(): Promise<void> {
    await fs.rm(this.tmp, { recursive: true, force: true });
  }
}

/** A FAT partition read with mtools at its offset (no copy needed). */
export class FatReader {
  constructor(
    readonly img: string,
    readonly part: Part,
  ) {}

  private get spec(): string {
    return `${this.img}@@${this.part.start}`;
  }

  async read(p: string): Promise<Buffer | null> {
    const r = await runBytes('mtype', ['-i', this.spec, `::/${p.replace(/^\//, '')}`]);
    return r.code === 0 ? r.stdout : null;
  }

  async copyOut(p: string, to: string): Promise<boolean> {
    const r = await $`mcopy -n -i ${this.spec} ${`::/${p.replace(/^\//, '')}`} ${to}`.nothrow();
    return r.exitCode === 0;
  }

  async ls(): Promise<string[]> {
    const r = await $`mdir -b -i ${this.spec} ::/`.nothrow();
    return r.stdout
      .split('\n')
      .map((l) => l.trim().replace(/^::\//, ''))
      .filter(Boolean);
  }

  async label(): Promise<string | null> {
    const r = await $`mlabel -s -i ${this.spec} ::`.nothrow();
    const m = /Volume label is (.*?)\s*$/m.exec(r.stdout);
    return m ? m[1].trim() : null;
  }
}

/** `cryptsetup luksDump` of a partition (its first 32 MiB copied out: LUKS2 headers are at most 16 MiB + keyslots). */
export async function luksDump(img: string, part: Part): Promise<string | null> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-e2e-luks-'));
  try {
    const f = path.join(tmp, 'hdr');
    const n = Math.min(part.size, 32 * 1024 * 1024);
    await $`dd if=${img} of=${f} bs=1M iflag=skip_bytes,count_bytes skip=${part.start} count=${n} status=none`;
    const r = await $`cryptsetup luksDump ${f}`.nothrow();
    return r.exitCode === 0 ? r.stdout : null;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * the ESP's boot files (kernel, initrd, command line) copied out for qemu's -kernel/-initrd/-append; an A/B card
 * (edgeforge/os-layout on its ESP) boots through the UEFI firmware and GRUB instead (`bios`)
 */
export async function bootFiles(img: string, toDir: string): Promise<{ kernel: string; initrd: string; cmdline: string; bios?: string }> {
  const parts = await partitions(img);
  const esp = parts.find((p) => p.type === 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  if (!esp) throw new Error(`${img} has no EFI system partition`);
  const fat = new FatReader(img, esp);
  if (await fat.read('edgeforge/os-layout')) return { kernel: '', initrd: '', cmdline: '', bios: FIRMWARE };
  const kernel = path.join(toDir, 'vmlinuz');
  const initrd = path.join(toDir, 'initrd.img');
  await fs.rm(kernel, { force: true });
  await fs.rm(initrd, { force: true });
  if (!(await fat.copyOut('vmlinuz', kernel)) || !(await fat.copyOut('initrd.img', initrd))) throw new Error(`${img}: vmlinuz/initrd.img not on the ESP`);
  const cmd = (await fat.read('cmdline.txt'))?.toString('utf8').trim();
  if (!cmd) throw new Error(`${img}: cmdline.txt not on the ESP`);
  return { kernel, initrd, cmdline: cmd };
}
