// bench:disk-images — per-device disk deltas for N devices (default 2,000) against a 2 GiB sparse raspi-style base,
// beside the obvious alternative measured in the same run: `cp --sparse=always` of the base per device
// (for --copies devices, default 20, extrapolated to N and labelled so).
//
//   npm run bench:disk-images [-- --devices 2000 --copies 20 --append]
//
// --append adds the result table to BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { prepareBase, sha256File } from '../disk/base.ts';
import { materialize } from '../disk/materialize.ts';
import { deviceDeltaPath, writeBaseRecord } from '../disk/output.ts';
import { personalize } from '../disk/personalize.ts';
import { writeFileAtomic } from '../util/atomic.ts';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    copies: { type: 'string', default: '20' },
    append: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const DEVICES = Number(args.devices);
const COPIES = Number(args.copies);
const EPOCH = 1767225600;
const MIB = 1024 * 1024;
const SECTOR = 512;

const diskUsed = async (p: string): Promise<number> => {
  const st = await fs.stat(p);
  if (!st.isDirectory()) return st.blocks * 512;
  let n = 0;
  for (const e of await fs.readdir(p)) n += await diskUsed(path.join(p, e));
  return n;
};
const fmt = (b: number) => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : b >= MIB ? `${(b / MIB).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/** A 2 GiB raspi-style base made with the real tools: MBR, 512 MiB FAT32 system-boot, ext4 root with some content. */
function buildBase(dir: string): string {
  const img = path.join(dir, 'base-2g.img');
  const size = 2 * 1024 * MIB;
  const bootStart = 2048;
  const bootSectors = (512 * MIB) / SECTOR; // as Ubuntu raspi images: 512 MiB, 4 KiB clusters
  const rootStart = bootStart + bootSectors;
  const rootSectors = size / SECTOR - rootStart;
  writeFileSync(img, '');
  execFileSync('truncate', ['-s', String(size), img]);
  execFileSync('sfdisk', ['-q', img], { input: `label: dos\nstart=${bootStart}, size=${bootSectors}, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n` });
  execFileSync('mkfs.vfat', ['-F', '32', '-n', 'system-boot', '--offset', String(bootStart), img, String((bootSectors * SECTOR) / 1024)], { stdio: 'ignore' });
  const fw = path.join(dir, 'fw');
  mkdirSync(path.join(fw, 'overlays'), { recursive: true });
  writeFileSync(path.join(fw, 'cmdline.txt'), 'console=serial0,115200 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc\n');
  writeFileSync(path.join(fw, 'config.txt'), '[all]\nkernel=vmlinuz\ncmdline=cmdline.txt\ninitramfs initrd.img followkernel\narm_64bit=1\n');
  writeFileSync(path.join(fw, 'start4.elf'), randomBytes(2 * MIB));
  writeFileSync(path.join(fw, 'vmlinuz'), randomBytes(10 * MIB));
  writeFileSync(path.join(fw, 'initrd.img'), randomBytes(24 * MIB));
  for (let i = 0; i < 40; i++) writeFileSync(path.join(fw, 'overlays', `overlay-${i}.dtbo`), randomBytes(3000));
  for (const f of ['user-data', 'meta-data', 'network-config']) writeFileSync(path.join(fw, f), `# default ${f}\n`);
  execFileSync(
    'mcopy',
    [
      '-s',
      '-i',
      `${img}@@${bootStart * SECTOR}`,
      ...['cmdline.txt', 'config.txt', 'start4.elf', 'vmlinuz', 'initrd.img', 'overlays', 'user-data', 'meta-data', 'network-config'].map((f) => path.join(fw, f)),
      '::',
    ],
    { env },
  );
  const root = path.join(dir, 'rootfs');
  mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
  for (let i = 0; i < 8; i++) writeFileSync(path.join(root, 'usr/lib', `blob-${i}.so`), randomBytes(16 * MIB));
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', root, '-L', 'writable', '-E', `offset=${rootStart * SECTOR}`, img, `${(rootSectors * SECTOR) / 1024}k`], { stdio: 'ignore' });
  return img;
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-bench-images-'));
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  try {
    let t = performance.now();
    const basePath = buildBase(work);
    const baseSize = (await fs.stat(basePath)).size;
    const baseUsed = await diskUsed(basePath);
    console.error(`base built in ${secs(performance.now() - t)}`);

    const pin = await sha256File(basePath); // what the profile would pin; not part of the timed work
    t = performance.now();
    const base = await prepareBase({ path: basePath, sha256: pin });
    const tPrepare = performance.now() - t; // once per build: verify the pin (hash 2 GiB) + ask for holes

    const out = path.join(work, 'out');
    await writeBaseRecord(out, base, 'raspi-mbr');
    t = performance.now();
    let total = 0;
    let max = 0;
    for (let i = 0; i < DEVICES; i++) {
      const id = `bench-dev-${String(i).padStart(5, '0')}`;
      const files = [
        {
          name: 'user-data',
          bytes: Buffer.from(`#cloud-config\nhostname: ${id}\nusers: [{name: ops, ssh_authorized_keys: [ssh-ed25519 AAAA${randomBytes(32).toString('base64')}]}]\n${'# config\n'.repeat(300)}`),
        },
        { name: 'meta-data', bytes: Buffer.from(`instance-id: ${id}\nlocal-hostname: ${id}\n`) },
        { name: 'network-config', bytes: Buffer.from('version: 2\nethernets: {eth0: {dhcp4: true}}\n') },
      ];
      const r = await personalize({ base, profile: 'raspi-mbr', files, epoch: EPOCH });
      await writeFileAtomic(path.join(out, deviceDeltaPath(id)), r.delta, { mode: 0o600 });
      total += r.delta.length;
      max = Math.max(max, r.delta.length);
    }
    const tDeltas = performance.now() - t;
    const deltaUsed = await diskUsed(path.join(out, 'devices'));

    t = performance.now();
    const img = path.join(work, 'materialized.img');
    const m = await materialize({ base, delta: await fs.readFile(path.join(out, deviceDeltaPath('bench-dev-00000'))), to: img });
    const tMat = performance.now() - t;
    const matUsed = await diskUsed(img);
    await fs.rm(img);

    const copies = path.join(work, 'copies');
    mkdirSync(copies);
    t = performance.now();
    for (let i = 0; i < COPIES; i++) execFileSync('cp', ['--sparse=always', basePath, path.join(copies, `dev-${i}.img`)]);
    const tCopies = performance.now() - t;
    const copiesUsed = await diskUsed(copies);

    const date = new Date().toISOString().slice(0, 10);
    const perCopy = tCopies / COPIES;
    say(`\n### Disk images: per-device deltas vs sparse copies (${date}; machine: 2 cores, 24 GB; shared with other jobs)\n`);
    say(`Base: ${fmt(baseSize)} raspi-style image built with sfdisk, mkfs.vfat, mcopy and mke2fs -d (512 MiB FAT32 boot with ~36 MiB of`);
    say(`firmware/kernel, ext4 root with 128 MiB of files), sparse: ${fmt(baseUsed)} on disk, ${base.mapped.length} mapped ranges. Preparing it (sha256 pin + block map): ${secs(tPrepare)}.\n`);
    say('| per device | devices | total time | time per device | bytes per device | disk used |');
    say('|---|---:|---:|---:|---:|---:|');
    say(`| delta (personalize + atomic write) | ${DEVICES} | ${secs(tDeltas)} | ${(tDeltas / DEVICES).toFixed(1)} ms | ${(total / DEVICES).toFixed(0)} avg, ${max} max | ${fmt(deltaUsed)} |`);
    say(`| \`cp --sparse=always\` of the base | ${COPIES} measured | ${secs(tCopies)} | ${(perCopy / 1000).toFixed(2)} s | ${fmt(baseSize)} apparent | ${fmt(copiesUsed)} |`);
    say(`| \`cp --sparse=always\`, extrapolated | ${DEVICES} (x${(DEVICES / COPIES).toFixed(0)} of the measured) | ~${secs(perCopy * DEVICES)} | | | ~${fmt((copiesUsed / COPIES) * DEVICES)} |`);
    say(`| materialize one device (${m.reflinked ? 'reflink' : 'sparse copy, no reflink on this filesystem'} + .bmap) | 1 | ${secs(tMat)} | | | ${fmt(matUsed)} |`);
    say(
      `\nDeltas use ${(((copiesUsed / COPIES) * DEVICES) / Math.max(deltaUsed, 1)).toFixed(0)}x less disk than sparse copies would for ${DEVICES} devices, and ${((perCopy * DEVICES) / tDeltas).toFixed(1)}x less time.`,
    );
    if (args.append) {
      const bm = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../BENCHMARKS.md');
      await fs.appendFile(bm, lines.join('\n') + '\n');
      console.error(`appended to ${bm}`);
    }
  } finally {
    if (!args.keep) await fs.rm(work, { recursive: true, force: true });
    else console.error(`kept ${work}`);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
