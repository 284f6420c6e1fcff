// `npm run e2e:base`: a small Debian arm64 system laid out as a raw disk of the uefi-gpt base profile,
// built without loop devices (debootstrap under qemu-user, sfdisk on the image file, mke2fs -d at an offset,
// mtools for the ESP) and cached outside the repository, keyed by the recipe's hash.
//
// Boot: the kernel, initrd and command line sit on the ESP (vmlinuz, initrd.img, cmdline.txt) and the qemu
// runner passes them with -kernel/-initrd/-append for a single-root card. The ESP also has GRUB at the removable
// path (EFI/BOOT/BOOTAA64.EFI, reading EFI/debian/grub.cfg), as Debian's arm64 images do: an A/B card
// (inventory os:) boots through the UEFI firmware and that GRUB, which picks the slot (docs/os-updates.md).
// The partition layout is the one a UEFI board's image has, so the uefi-gpt profile's seed placement (a
// CIDATA partition in the 1 MiB gap) is exercised for real.
import { promises as fs, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import { ARCH, CMDLINE_EXTRA, FILES, GRUB, LAYOUT, PACKAGES, SUITE, guidFor, recipe, recipeHash, rootfsHash } from './recipe.ts';
import { log, stage, stageSummary } from './stage.ts';
import { sha256File } from '../disk/base.ts';

$.verbose = false;

const MiB = 1024 * 1024;

export interface BaseImageInfo {
  /** the raw disk image (the file to give `edgeforge build --base-image`) */
  path: string;
  sha256: string;
  size: number;
  recipeHash: string;
  diskGuid: string;
  esp: { number: 1; partuuid: string; startBytes: number; sizeBytes: number };
  root: { number: 2; partuuid: string; fsUuid: string; startBytes: number; sizeBytes: number };
  /** the command line written to the ESP's cmdline.txt */
  cmdline: string;
  kernelVersion: string;
}

export function cacheRoot(): string {
  return process.env.EDGEFORGE_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'edgeforge-e2e');
}

/** The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list), or EDGEFORGE_E2E_MIRROR. */
export async function debianMirror(): Promise<string> {
  if (process.env.EDGEFORGE_E2E_MIRROR) return process.env.EDGEFORGE_E2E_MIRROR;
  const files = ['/etc/apt/sources.list'];
  for (const f of await fs.readdir('/etc/apt/sources.list.d').catch(() => [] as string[])) files.push(path.join('/etc/apt/sources.list.d', f));
  for (const f of files) {
    const text = await fs.readFile(f, 'utf8').catch(() => '');
    for (const m of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      const uri = m[1];
      if (/\/debian\/?$/.test(uri) && !/security/.test(uri)) return uri.replace(/\/$/, '');
    }
  }
  return 'http://deb.debian.org/debian';
}

async function need(cmds: string[]): Promise<void> {
  const missing: string[] = [];
  for (const c of cmds) if ((await $`command -v ${c}`.nothrow()).exitCode !== 0) missing.push(c);
  if (missing.length) {
    throw new Error(`missing host tools: ${missing.join(', ')} (apt-get install debootstrap qemu-user-static binfmt-support mtools dosfstools fdisk e2fsprogs; they are in .ci/packages.txt)`);
  }
}

/** qemu-user runs the arm64 maintainer scripts inside the chroot: binfmt_misc must be mounted and aarch64 on. */
async function ensureBinfmt(): Promise<void> {
  if (!existsSync('/proc/sys/fs/binfmt_misc/status')) {
    await $`mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`;
  }
  if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) {
    await $`update-binfmts --enable qemu-aarch64`;
  }
  const st = await fs.readFile('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8');
  if (!/^enabled/m.test(st)) throw new Error('binfmt qemu-aarch64 is registered but disabled');
}

/** an interrupted debootstrap leaves proc/sys mounted in its target: unmount before deleting it */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await fs.readFile('/proc/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
  for (const m of mounts.sort().reverse()) await $`umount -l ${m}`.nothrow();
}

async function buildRootfs(dir: string, mirror: string, logFile: string): Promise<void> {
  const tmp = `${dir}.tmp`;
  await unmountUnder(tmp);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const out = await fs.open(logFile, 'w');
  try {
    const r = await $({ stdio: ['ignore', out.fd, out.fd] })`debootstrap --variant=minbase --arch=${ARCH} --include=${PACKAGES.join(',')} ${SUITE} ${tmp} ${mirror}`.nothrow();
    if (r.exitCode !== 0) {
      const tail = (await fs.readFile(logFile, 'utf8')).split('\n').slice(-30).join('\n');
      const dlog = await fs.readFile(path.join(tmp, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
      throw new Error(`debootstrap failed (exit ${r.exitCode}); log ${logFile}:\n${tail}\n${dlog.split('\n').slice(-30).join('\n')}`);
    }
    for (const [p, content] of Object.entries(FILES)) {
      await fs.mkdir(path.join(tmp, path.dirname(p)), { recursive: true });
      await fs.writeFile(path.join(tmp, p), content);
    }
    const chroot = (cmd: string) => $({ stdio: ['ignore', out.fd, out.fd] })`chroot ${tmp} /bin/sh -c ${cmd}`;
    await chroot('locale-gen');
    // an image, not a machine: every device must generate its own identity on first boot
    await fs.writeFile(path.join(tmp, 'etc/machine-id'), '');
    await fs.rm(path.join(tmp, 'var/lib/dbus/machine-id'), { force: true });
    for (const f of await fs.readdir(path.join(tmp, 'etc/ssh'))) if (f.startsWith('ssh_host_')) await fs.rm(path.join(tmp, 'etc/ssh', f));
    await fs.rm(path.join(tmp, 'etc/hostname'), { force: true });
    await fs.writeFile(path.join(tmp, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    await chroot('apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/*.log /var/cache/debconf/*-old /tmp/* /var/tmp/*');
    await fs.rm(path.join(tmp, 'debootstrap'), { recursive: true, force: true });
  } finally {
    await out.close();
  }
  await fs.rename(tmp, dir);
}

async function findKernel(rootfs: string): Promise<{ version: string; vmlinuz: string; initrd: string }> {
  const boot = path.join(rootfs, 'boot');
  const names = await fs.readdir(boot);
  const v = names.find((n) => n.startsWith('vmlinuz-'));
  if (!v) throw new Error(`no kernel in ${boot} (is linux-image-cloud-arm64 in the recipe?)`);
  const version = v.slice('vmlinuz-'.length);
  const initrd = path.join(boot, `initrd.img-${version}`);
  if (!existsSync(initrd)) throw new Error(`no initrd for ${version} in ${boot}: update-initramfs did not run in the chroot`);
  return { version, vmlinuz: path.join(boot, v), initrd };
}

async function duBytes(dir: string): Promise<number> {
  const r = await $`du -s --block-size=1 ${dir}`;
  return Number(r.stdout.split(/\s/)[0]);
}

async function layoutDisk(rootfs: string, hash: string, img: string): Promise<BaseImageInfo> {
  const kernel = await findKernel(rootfs);
  const rootBytes = Math.ceil(((await duBytes(rootfs)) * 1.25) / MiB + LAYOUT.rootHeadroomMiB) * MiB;
  const espStart = LAYOUT.firstMiB * MiB;
  const espBytes = LAYOUT.espMiB * MiB;
  const rootStart = espStart + espBytes;
  const total = rootStart + rootBytes + LAYOUT.tailFreeMiB * MiB + MiB + LAYOUT.padSectors * 512; // + room for the backup GPT
  const diskGuid = guidFor(hash, 'disk');
  const espUuid = guidFor(hash, 'esp');
  const rootUuid = guidFor(hash, 'root');
  const fsUuid = guidFor(hash, 'rootfs');
  const cmdline = `root=PARTUUID=${rootUuid} ${CMDLINE_EXTRA}`;

  const tmp = `${img}.tmp`;
  await fs.rm(tmp, { force: true });
  await fs.writeFile(tmp, '');
  await fs.truncate(tmp, total); // sparse
  const table = [
    'label: gpt',
    `label-id: ${diskGuid}`,
    'unit: sectors',
    `first-lba: ${LAYOUT.firstUsableLba}`,
    `start=${espStart / 512}, size=${espBytes / 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=${espUuid}, name="ESP"`,
    // the Linux root (ARM64) partition type, as in Debian's arm64 cloud images
    `start=${rootStart / 512}, size=${rootBytes / 512}, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=${rootUuid}, name="rootfs"`,
    '',
  ].join('\n');
  await $({ input: table })`sfdisk --no-reread --no-tell-kernel -q ${tmp}`;

  // fstab goes in before the root filesystem is made from the directory
  await fs.writeFile(path.join(rootfs, 'etc/fstab'), `PARTUUID=${rootUuid}\t/\text4\terrors=remount-ro\t0\t1\nPARTUUID=${espUuid}\t/boot/efi\tvfat\tumask=0077,nofail\t0\t2\n`);
  await fs.mkdir(path.join(rootfs, 'boot/efi'), { recursive: true });

  // ESP: FAT32 built as its own file with mtools, then placed with dd
  const esp = `${img}.esp`;
  await fs.rm(esp, { force: true });
  await $`mkfs.vfat -F 32 -n ESP -i ${espUuid.slice(0, 8)} -C ${esp} ${espBytes / 1024}`;
  const cmdFile = `${img}.cmdline`;
  await fs.writeFile(cmdFile, `${cmdline}\n`);
  await $`mcopy -i ${esp} -o ${kernel.vmlinuz} ::/vmlinuz`;
  await $`mcopy -i ${esp} -o ${kernel.initrd} ::/initrd.img`;
  await $`mcopy -i ${esp} -o ${cmdFile} ::/cmdline.txt`;
  // GRUB at the removable path, reading EFI/debian/grub.cfg: this one boots the single root (an A/B card gets
  // edgeforge's A/B configuration in its place). Made by the rootfs's grub-mkimage under qemu-user.
  await ensureBinfmt();
  const efi = path.join(rootfs, 'tmp/BOOTAA64.EFI');
  await $`chroot ${rootfs} grub-mkimage -O arm64-efi -p ${GRUB.prefix} -o /tmp/BOOTAA64.EFI ${GRUB.modules}`;
  const grubCfg = `${img}.grub.cfg`;
  await fs.writeFile(
    grubCfg,
    `set timeout=0
linux (hd0,gpt2)/vmlinuz ${cmdline}
initrd (hd0,gpt2)/initrd.img
boot
`,
  );
  await $`mmd -i ${esp} ::/EFI ::/EFI/BOOT ::${GRUB.prefix}`;
  await $`mcopy -i ${esp} ${efi} ::/EFI/BOOT/BOOTAA64.EFI`;
  await $`mcopy -i ${esp} ${grubCfg} ::${GRUB.prefix}/grub.cfg`;
  await fs.rm(efi);
  await fs.rm(grubCfg);
  await $`dd if=${esp} of=${tmp} bs=1M seek=${espStart / MiB} conv=notrunc,sparse status=none`;
  await fs.rm(esp);
  await fs.rm(cmdFile);

  // root: ext4 populated from the directory, written straight into the image at the partition's offset
  await $`mke2fs -q -F -t ext4 -L rootfs -U ${fsUuid} -E offset=${rootStart},nodiscard -d ${rootfs} ${tmp} ${rootBytes / 1024}k`;
  const fsck = await $`e2fsck -fn ${`${tmp}?offset=${rootStart}`}`.nothrow();
  if (fsck.exitCode !== 0) {
    // e2fsck cannot take an offset on every version: check a copy of the partition instead
    const part = `${img}.root`;
    await $`dd if=${tmp} of=${part} bs=1M skip=${rootStart / MiB} count=${rootBytes / MiB} conv=sparse status=none`;
    const r = await $`e2fsck -fn ${part}`.nothrow();
    await fs.rm(part);
    if (r.exitCode !== 0) throw new Error(`the root filesystem does not check clean:\n${r.stdout}${r.stderr}`);
  }
  await fs.rename(tmp, img);
  return {
    path: img,
    sha256: await sha256File(img),
    size: total,
    recipeHash: hash,
    diskGuid,
    esp: { number: 1, partuuid: espUuid, startBytes: espStart, sizeBytes: espBytes },
    root: { number: 2, partuuid: rootUuid, fsUuid, startBytes: rootStart, sizeBytes: rootBytes },
    cmdline,
    kernelVersion: kernel.version,
  };
}

/** Builds (or finds in the cache) the base image; returns its description. */
export async function ensureBaseImage(opts: { rebuild?: boolean } = {}): Promise<BaseImageInfo> {
  const mirror = await debianMirror();
  const hash = recipeHash(mirror);
  const dir = path.join(cacheRoot(), rootfsHash(mirror));
  const infoFile = path.join(dir, `base-${hash.slice(0, 16)}.json`);
  if (!opts.rebuild && existsSync(infoFile)) {
    const info = JSON.parse(await fs.readFile(infoFile, 'utf8')) as BaseImageInfo;
    if (existsSync(info.path)) {
      log(`base image cached: ${info.path} (recipe ${hash.slice(0, 12)})`);
      return info;
    }
  }
  if (process.getuid?.() !== 0) throw new Error('building the base image needs root (debootstrap, chroot, binfmt_misc); run it as root or use a cache built elsewhere (EDGEFORGE_E2E_CACHE)');
  await need(['debootstrap', 'qemu-aarch64-static', 'update-binfmts', 'sfdisk', 'mke2fs', 'e2fsck', 'mkfs.vfat', 'mcopy', 'mmd', 'dd', 'du']);
  await fs.mkdir(dir, { recursive: true });
  // one builder per cache entry: a second run would delete the first one's half-built rootfs
  const lockFile = path.join(dir, 'build.lock');
  let lock;
  try {
    lock = await fs.open(lockFile, 'wx');
    await lock.write(`${process.pid}\n`);
  } catch {
    const pid = Number((await fs.readFile(lockFile, 'utf8').catch(() => '')).trim());
    let alive = false;
    try {
      if (pid) (process.kill(pid, 0), (alive = true));
    } catch {}
    if (alive) throw new Error(`another build (pid ${pid}) is making this base image (${lockFile}); wait for it`);
    await fs.rm(lockFile, { force: true });
    return ensureBaseImage(opts);
  }
  try {
    return await buildLocked(dir, hash, mirror, infoFile, opts);
  } finally {
    await lock.close();
    await fs.rm(lockFile, { force: true });
  }
}

async function buildLocked(dir: string, hash: string, mirror: string, infoFile: string, opts: { rebuild?: boolean }): Promise<BaseImageInfo> {
  await fs.writeFile(path.join(dir, 'recipe.json'), JSON.stringify({ mirror, ...recipe(mirror) }, null, 2));
  const rootfs = path.join(dir, 'rootfs');
  if (opts.rebuild || !existsSync(rootfs)) {
    await stage('base: binfmt', ensureBinfmt);
    log(`debootstrap ${SUITE}/${ARCH} from ${mirror} (about 9 minutes under emulation; log ${path.join(dir, 'debootstrap.log')})`);
    await stage('base: debootstrap rootfs', () => buildRootfs(rootfs, mirror, path.join(dir, 'debootstrap.log')));
  } else {
    log(`rootfs cached: ${rootfs}`);
  }
  const info = await stage('base: disk layout', () => layoutDisk(rootfs, hash, path.join(dir, `base-uefi-gpt-${hash.slice(0, 16)}.img`)));
  await fs.writeFile(infoFile, JSON.stringify(info, null, 2));
  // images of older layouts of this rootfs are dead weight (GBs, even sparse they hold ~1 GB each)
  for (const f of await fs.readdir(dir)) {
    if (/^base-.*\.(img|json)$/.test(f) && path.join(dir, f) !== info.path && path.join(dir, f) !== infoFile) await fs.rm(path.join(dir, f), { force: true });
  }
  return info;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('scripts/e2e/base-image.ts')) {
  if (process.argv.some((a) => a === '-h' || a === '--help')) {
    process.stdout.write(
      "usage: npm run e2e:base [-- --rebuild] [-- --json]\n  builds or finds the cached Debian arm64 uefi-gpt base image; prints its path\n  cache: $EDGEFORGE_E2E_CACHE or ~/.cache/edgeforge-e2e; mirror: $EDGEFORGE_E2E_MIRROR or apt's\n",
    );
    process.exit(0);
  }
  const rebuild = process.argv.includes('--rebuild');
  const json = process.argv.includes('--json');
  ensureBaseImage({ rebuild })
    .then((info) => {
      process.stderr.write(`${stageSummary()}\n`);
      if (json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else process.stdout.write(`${info.path}\nsha256 ${info.sha256}\nkernel ${info.kernelVersion}\ncmdline ${info.cmdline}\n`);
    })
    .catch((err) => {
      process.stderr.write(`${stageSummary()}\ne2e:base failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
