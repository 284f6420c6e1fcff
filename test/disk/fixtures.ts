// Realistic base images built with the real tools (sfdisk, mkfs.vfat, mtools, mke2fs -d), small and sparse.
import { tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const MT_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '' };

/** Run a tool (by name: scripts/testkit/tools.ts finds it and names its package when it is missing). */
export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(tool(cmd), args, { input, env: MT_ENV, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (so a fixture's firmware is the same every run): AES-128-CTR keystream. */
export function pseudo(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

export interface Fixture {
  path: string;
  sha256: string;
  /** files placed in the FAT partition by mtools, path -> bytes */
  fatFiles: Map<string, Buffer>;
  fatOffset: number;
  fatSize: number;
  rootOffset: number;
  rootSize: number;
}

/** Puts files into the FAT at `offset` with one `mcopy -s` of a staged tree. */
function mcopyAll(img: string, offset: number, files: Map<string, Buffer>, tmp: string): void {
  const stage = mkdtempSync(path.join(tmp, 'stage-'));
  for (const [p, bytes] of files) {
    mkdirSync(path.dirname(path.join(stage, p)), { recursive: true });
    writeFileSync(path.join(stage, p), bytes);
  }
  run('mcopy', ['-s', '-i', `${img}@@${offset}`, ...readdirSync(stage).map((n) => path.join(stage, n)), '::']);
}

function makeRootfs(dir: string): string {
  const root = path.join(dir, 'rootfs');
  mkdirSync(path.join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  writeFileSync(path.join(root, 'etc/hostname'), 'ubuntu\n');
  writeFileSync(path.join(root, 'etc/cloud/cloud.cfg.d/99-fake_cloud.cfg'), 'datasource_list: [NoCloud]\ndatasource: {NoCloud: {fs_label: system-boot}}\n');
  writeFileSync(path.join(root, 'usr/bin/k3s-placeholder'), pseudo('k3s', 600_000));
  return root;
}

const SECTOR = 512;

/** Ubuntu-raspi-like: MBR, p1 FAT32 "system-boot" (firmware, overlays/, default seed), p2 ext4 root. ~50 MiB sparse. */
export function buildRaspiFixture(dir: string): Fixture {
  mkdirSync(dir, { recursive: true });
  const img = path.join(dir, 'raspi.img');
  const bootStart = 2048;
  const bootSectors = 81920; // 40 MiB: FAT32 with 512-byte clusters needs > 32 MiB
  const rootStart = bootStart + bootSectors;
  const rootSectors = 16384;
  writeFileSync(img, '');
  run('truncate', ['-s', `${(rootStart + rootSectors + 2048) * SECTOR}`, img]);
  run('sfdisk', ['-q', img], `label: dos\nlabel-id: 0x4f1c2a9e\nstart=${bootStart}, size=${bootSectors}, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`);
  execFileSync(tool('mkfs.vfat'), ['-F', '32', '-s', '1', '-n', 'system-boot', '-i', '4f1c2a9e', '--offset', `${bootStart}`, img, `${(bootSectors * SECTOR) / 1024}`], {
    env: { ...MT_ENV, SOURCE_DATE_EPOCH: '1700000000' },
    stdio: 'ignore',
  });
  const files = new Map<string, Buffer>([
    ['config.txt', Buffer.from('[all]\nkernel=vmlinuz\ncmdline=cmdline.txt\ninitramfs initrd.img followkernel\ndtoverlay=dwc2\narm_64bit=1\n')],
    ['cmdline.txt', Buffer.from('console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc quiet splash\n')],
    ['start4.elf', pseudo('start4', 220_000)],
    ['fixup4.dat', pseudo('fixup4', 5_400)],
    ['bcm2711-rpi-4-b.dtb', pseudo('dtb', 52_000)],
    ['vmlinuz', pseudo('kernel', 900_000)],
    ['initrd.img', pseudo('initrd', 400_000)],
    ['overlays/README', Buffer.from('overlays go here\n')],
    ['overlays/vc4-kms-v3d-pi4.dtbo', pseudo('vc4', 4_000)],
    ['overlays/dwc2.dtbo', pseudo('dwc2', 1_200)],
    ['overlays/disable-bt.dtbo', pseudo('bt', 1_100)],
    ['user-data', Buffer.from('#cloud-config\n# default user-data shipped with the image\nchpasswd: {expire: true}\n')],
    ['meta-data', Buffer.from('')],
    ['network-config', Buffer.from('# default network-config\nversion: 2\nethernets: {eth0: {dhcp4: true, optional: true}}\n')],
    ['README', Buffer.from('Ubuntu raspi system-boot placeholder\n')],
  ]);
  mcopyAll(img, bootStart * SECTOR, files, dir);
  execFileSync(
    tool('mke2fs'),
    ['-q', '-t', 'ext4', '-d', makeRootfs(dir), '-L', 'writable', '-U', '6c0e6d2a-2c1f-4d6e-9b1a-2f2f0a1b3c4d', '-E', `offset=${rootStart * SECTOR}`, img, `${(rootSectors * SECTOR) / 1024}k`],
    {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' },
      stdio: 'ignore',
    },
  );
  return {
    path: img,
    sha256: sha256(readFileSync(img)),
    fatFiles: files,
    fatOffset: bootStart * SECTOR,
    fatSize: bootSectors * SECTOR,
    rootOffset: rootStart * SECTOR,
    rootSize: rootSectors * SECTOR,
  };
}

/** Generic UEFI cloud-image-like: GPT, p1 ESP (FAT32), p2 ext4 root at the end, free space after root. */
export function buildGptFixture(dir: string): Fixture {
  mkdirSync(dir, { recursive: true });
  const img = path.join(dir, 'uefi.img');
  const espStart = 2048;
  const espSectors = 81920;
  const rootStart = espStart + espSectors;
  const rootSectors = 16384;
  writeFileSync(img, '');
  run('truncate', ['-s', `${(rootStart + rootSectors + 8192 + 33) * SECTOR}`, img]); // 4 MiB free after root
  run(
    'sfdisk',
    ['-q', img],
    `label: gpt\nlabel-id: 3B8E8B7C-1F3E-4C0A-9F7E-0C6A1D5B2E11\nfirst-lba: 34\nstart=${espStart}, size=${espSectors}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=0E1D7C4A-9B51-4F57-8E0C-61B2C0A6F001, name="UEFI"\nstart=${rootStart}, size=${rootSectors}, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=0E1D7C4A-9B51-4F57-8E0C-61B2C0A6F002, name="root"\n`,
  );
  execFileSync(tool('mkfs.vfat'), ['-F', '32', '-s', '1', '-n', 'UEFI', '-i', '0e1d7c4a', '--offset', `${espStart}`, img, `${(espSectors * SECTOR) / 1024}`], {
    env: { ...MT_ENV, SOURCE_DATE_EPOCH: '1700000000' },
    stdio: 'ignore',
  });
  const files = new Map<string, Buffer>([
    ['EFI/BOOT/BOOTAA64.EFI', pseudo('shim', 300_000)],
    ['EFI/ubuntu/grubaa64.efi', pseudo('grub', 250_000)],
    ['EFI/ubuntu/grub.cfg', Buffer.from("search.fs_uuid 6c0e6d2a-2c1f-4d6e-9b1a-2f2f0a1b3c4d root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n")],
  ]);
  mcopyAll(img, espStart * SECTOR, files, dir);
  execFileSync(
    tool('mke2fs'),
    ['-q', '-t', 'ext4', '-d', makeRootfs(dir), '-L', 'cloudimg-rootfs', '-U', '6c0e6d2a-2c1f-4d6e-9b1a-2f2f0a1b3c4d', '-E', `offset=${rootStart * SECTOR}`, img, `${(rootSectors * SECTOR) / 1024}k`],
    {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' },
      stdio: 'ignore',
    },
  );
  return {
    path: img,
    sha256: sha256(readFileSync(img)),
    fatFiles: files,
    fatOffset: espStart * SECTOR,
    fatSize: espSectors * SECTOR,
    rootOffset: rootStart * SECTOR,
    rootSize: rootSectors * SECTOR,
  };
}

export function deviceSeed(id: string): { name: string; bytes: Buffer }[] {
  return [
    { name: 'user-data', bytes: Buffer.from(`#cloud-config\nhostname: ${id}\nssh_pwauth: false\nwrite_files:\n- path: /etc/edgeforge/id\n  content: ${id}\n${'# padding\n'.repeat(200)}`) },
    { name: 'meta-data', bytes: Buffer.from(`instance-id: ${id}\nlocal-hostname: ${id}\n`) },
    { name: 'network-config', bytes: Buffer.from(`version: 2\nethernets:\n  eth0:\n    dhcp4: true\n`) },
  ];
}
