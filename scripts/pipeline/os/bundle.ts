// `edgeforge os bundle`: a RAUC bundle of a base image's OS (docs/os-updates.md). The base's root partition
// becomes rootfs.ext4 (checked, shrunk to its content: RAUC grows it to the slot again, resize=true), on a
// Raspberry Pi its boot partition becomes boot.vfat; `rauc bundle` (verity format) signs them with the fleet's
// OS-update key, which it reads from stdin. The bundle is written whole or not at all.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileDev } from '../../disk/block.ts';
import { prepareBase } from '../../disk/base.ts';
import { basePartitions, copyPartition } from '../../disk/ab-base.ts';
import { readPartitionTable, type Partition } from '../../disk/partitions.ts';
import { sha256OfFile } from '../../util/hash.ts';
import { tempPathFor } from '../../util/atomic.ts';
import { spawnWithSecret } from '../../keys/os-key.ts';
import { UserError } from '../../util/errors.ts';
import { bundleFileName, raucManifest } from '../../render/os/slots.ts';
import type { OsLayout } from '../../inventory/schema.ts';

export interface BundleOptions {
  fleet: string;
  version: string;
  baseImage: string;
  /** the base's pin; computed when not given */
  baseSha256?: string;
  /** from the base's partition table when not given (GPT: uefi-gpt, MBR: raspi-mbr) */
  layout?: OsLayout;
  toDir: string;
  certPem: string;
  keyPem: string;
}

export interface BundleResult {
  file: string;
  sha256: string;
  bytes: number;
  layout: OsLayout;
  version: string;
  baseImageSha256: string;
  rootfsBytes: number;
}

function run(cmd: string, args: string[], pkg: string, secret?: string): string {
  const r = spawnWithSecret(cmd, args, secret);
  if (r.error) throw new UserError(`cannot run ${cmd} (Debian package ${pkg}): ${r.error.message}`);
  // 127: the shell that passes the secret did not find the program
  if (r.status === 127) throw new UserError(`cannot run ${cmd} (Debian package ${pkg}): not installed`);
  if (r.status !== 0) throw new UserError(`${cmd} ${args[0]} failed (exit ${r.status}): ${(r.stderr.toString() || r.stdout.toString()).trim().split('\n').slice(-4).join(' ')}`);
  return r.stdout.toString();
}

/** A partition's bytes (its mapped ranges; holes stay holes) as a file of its own. */
async function extract(rawPath: string, base: Awaited<ReturnType<typeof prepareBase>>, p: Partition, to: string): Promise<void> {
  const fh = await fs.open(to, 'w+', 0o600);
  try {
    await fh.truncate(p.size);
    await copyPartition(rawPath, base, p, 0, new FileDev(fh, p.size, false));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The root filesystem checked and shrunk to its content (resize2fs -M), the file cut to the new size. */
function shrinkExt4(file: string): number {
  // -p: fix only what is safe; exit 1 means "fixed" (a clean-unmounted base has nothing to fix)
  const fsck = spawnSync('e2fsck', ['-f', '-p', file], { encoding: 'utf8' });
  if (fsck.error) throw new UserError(`cannot run e2fsck (Debian package e2fsprogs): ${fsck.error.message}`);
  if ((fsck.status ?? 8) > 1) throw new UserError(`the base image's root filesystem does not check clean (e2fsck exit ${fsck.status}): ${fsck.stdout}${fsck.stderr}`);
  const out = run('resize2fs', ['-M', file], 'e2fsprogs');
  const m = /is now (\d+) \((\d+)k\) blocks long/.exec(out);
  if (!m) throw new UserError(`resize2fs -M did not say the new size: ${out.trim()}`);
  return Number(m[1]) * Number(m[2]) * 1024;
}

export async function makeOsBundle(o: BundleOptions): Promise<BundleResult> {
  const baseSha256 = o.baseSha256 ?? (await sha256OfFile(o.baseImage)).sha256;
  const base = await prepareBase({ path: o.baseImage, sha256: baseSha256 });
  const fh = await fs.open(base.rawPath, 'r');
  let table;
  try {
    table = await readPartitionTable(new FileDev(fh, base.size, true));
  } finally {
    await fh.close();
  }
  const layout: OsLayout = o.layout ?? (table.scheme === 'gpt' ? 'uefi-gpt' : 'raspi-mbr');
  if ((layout === 'uefi-gpt') !== (table.scheme === 'gpt'))
    throw new UserError(`--layout ${layout} needs a ${layout === 'uefi-gpt' ? 'GPT' : 'MBR'} base image; ${o.baseImage} has ${table.scheme.toUpperCase()}`);
  const { boot, root } = basePartitions(table.partitions, layout);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-os-bundle-'));
  try {
    const content = path.join(work, 'content');
    await fs.mkdir(content);
    const rootfs = path.join(content, 'rootfs.ext4');
    await extract(base.rawPath, base, root, rootfs);
    const rootfsBytes = shrinkExt4(rootfs);
    await fs.truncate(rootfs, rootfsBytes);
    if (layout === 'raspi-mbr') await extract(base.rawPath, base, boot, path.join(content, 'boot.vfat'));
    await fs.writeFile(path.join(content, 'manifest.raucm'), raucManifest({ fleet: o.fleet, layout, version: o.version, baseSha256 }));
    const certFile = path.join(work, 'cert.pem');
    await fs.writeFile(certFile, o.certPem);
    await fs.mkdir(o.toDir, { recursive: true });
    const file = path.join(o.toDir, bundleFileName(o.version, layout));
    const tmp = `${tempPathFor(file)}.raucb`;
    try {
      // the key on stdin: it never lands on a disk in clear
      run('rauc', ['bundle', `--cert=${certFile}`, '--key=/dev/stdin', content, tmp], 'rauc', o.keyPem);
      // as a device will: the signature against the certificate alone
      run('rauc', ['info', `--keyring=${certFile}`, tmp], 'rauc');
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const h = await sha256OfFile(file);
    return { file, sha256: h.sha256, bytes: h.bytes, layout, version: o.version, baseImageSha256: baseSha256, rootfsBytes };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
