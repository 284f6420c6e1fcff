// Is it safe to write this target? Everything comes from sysfs and /proc (paths injectable, so tests run
// against a fake tree): a card must be a whole, removable disk, not mounted (nor any of its partitions),
// not held by device-mapper/RAID, not swap, not the disk / or /boot lives on, and big enough.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface SysEnv {
  sysRoot: string; // /sys
  mountinfo: string; // /proc/self/mountinfo
  swaps: string; // /proc/swaps
}

export const REAL_SYS: SysEnv = { sysRoot: '/sys', mountinfo: '/proc/self/mountinfo', swaps: '/proc/swaps' };

export interface BlockInfo {
  path: string;
  /** kernel name: sdb, mmcblk0, sdb1 */
  name: string;
  devno: string; // "8:16"
  partition: boolean;
  /** whole disk this partition belongs to (itself for a disk), and its device number */
  disk: string;
  diskDevno: string;
  removable: boolean;
  size: number;
  model: string;
  vendor: string;
  serial: string;
  /** partitions of the disk: name -> devno */
  partitions: Map<string, string>;
  /** device-mapper / md devices built on this disk or its partitions */
  holders: string[];
}

async function readText(p: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(p, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** The sysfs directory of a device number, e.g. /sys/devices/.../block/sdb (or .../sdb/sdb1). */
async function sysDir(env: SysEnv, devno: string): Promise<string | undefined> {
  try {
    return await fs.realpath(path.join(env.sysRoot, 'dev/block', devno));
  } catch {
    return undefined;
  }
}

/** Walks up from the device to the first ancestor that has a `serial` file (USB readers keep it there). */
async function findSerial(dir: string): Promise<string> {
  let d = path.join(dir, 'device');
  try {
    d = await fs.realpath(d);
  } catch {
    return '';
  }
  for (let i = 0; i < 8 && d.length > 1; i++, d = path.dirname(d)) {
    const s = (await readText(path.join(d, 'serial'))) ?? (await readText(path.join(d, 'vpd_pg80')));
    if (s) return s.replace(/[^\x20-\x7e]/g, '').trim();
  }
  return '';
}

export async function inspectBlock(devPath: string, devno: string, env: SysEnv = REAL_SYS): Promise<BlockInfo> {
  const dir = await sysDir(env, devno);
  if (!dir) throw new Error(`${devPath}: block device ${devno} is not in ${env.sysRoot} (is sysfs mounted?)`);
  const partition = (await readText(path.join(dir, 'partition'))) !== undefined;
  const diskDir = partition ? path.dirname(dir) : dir;
  const partitions = new Map<string, string>();
  const holders: string[] = [];
  for (const e of await fs.readdir(diskDir).catch(() => [] as string[])) {
    const dn = await readText(path.join(diskDir, e, 'dev'));
    if (dn && (await readText(path.join(diskDir, e, 'partition'))) !== undefined) {
      partitions.set(e, dn);
      for (const h of await fs.readdir(path.join(diskDir, e, 'holders')).catch(() => [] as string[])) holders.push(`${h} (on ${e})`);
    }
  }
  for (const h of await fs.readdir(path.join(diskDir, 'holders')).catch(() => [] as string[])) holders.push(h);
  return {
    path: devPath,
    name: path.basename(dir),
    devno,
    partition,
    disk: path.basename(diskDir),
    diskDevno: (await readText(path.join(diskDir, 'dev'))) ?? devno,
    removable: (await readText(path.join(diskDir, 'removable'))) === '1',
    size: Number((await readText(path.join(dir, 'size'))) ?? 0) * 512, // sysfs counts 512-byte sectors whatever the device
    model: (await readText(path.join(diskDir, 'device/model'))) ?? (await readText(path.join(diskDir, 'device/name'))) ?? '',
    vendor: (await readText(path.join(diskDir, 'device/vendor'))) ?? '',
    serial: await findSerial(diskDir),
    partitions,
    holders,
  };
}

export interface MountEntry {
  devno: string;
  mountPoint: string;
  source: string;
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [left, right = ''] = line.split(' - ');
    const f = left.split(' ');
    const r = right.split(' ');
    const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    out.push({ devno: f[2], mountPoint: unesc(f[4] ?? ''), source: unesc(r[1] ?? '') });
  }
  return out;
}

/** Whole disks under a device number, following device-mapper/md slaves down (LVM on LUKS on sda2 -> sda). */
async function disksUnder(env: SysEnv, devno: string, depth = 0): Promise<string[]> {
  const dir = await sysDir(env, devno);
  if (!dir || depth > 8) return [];
  const slaves = await fs.readdir(path.join(dir, 'slaves')).catch(() => [] as string[]);
  if (slaves.length) {
    const out: string[] = [];
    for (const s of slaves) {
      const dn = await readText(path.join(dir, 'slaves', s, 'dev'));
      if (dn) out.push(...(await disksUnder(env, dn, depth + 1)));
    }
    return out;
  }
  const isPart = (await readText(path.join(dir, 'partition'))) !== undefined;
  return [path.basename(isPart ? path.dirname(dir) : dir)];
}

const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/boot/firmware', '/usr', '/var']);

export interface SafetyContext {
  imageSize: number;
  forceDevice: boolean;
  env?: SysEnv;
}

/** Every reason not to write this block device (empty: safe). */
export async function blockProblems(info: BlockInfo, ctx: SafetyContext): Promise<string[]> {
  const env = ctx.env ?? REAL_SYS;
  const problems: string[] = [];
  const mounts = parseMountinfo((await readText(env.mountinfo)) ?? '');
  const mine = new Map<string, string>([[info.disk, info.diskDevno], ...info.partitions]);
  const myDevnos = new Set(mine.values());
  const myNames = new Set([...mine.keys()].map((n) => `/dev/${n}`));

  const systemDisks = new Set<string>();
  for (const m of mounts) if (SYSTEM_MOUNTS.has(m.mountPoint)) for (const d of await disksUnder(env, m.devno)) systemDisks.add(d);
  if (systemDisks.has(info.disk)) problems.push(`${info.path} is the system disk (${info.disk} holds / or /boot): never flashed`);

  const mounted = mounts.filter((m) => myDevnos.has(m.devno) || myNames.has(m.source));
  if (mounted.length) problems.push(`${info.path} is mounted (${mounted.map((m) => `${m.source || m.devno} on ${m.mountPoint}`).join(', ')}): unmount it first`);
  // mounted through LVM/LUKS/RAID: the holder is what is mounted
  for (const m of mounts) {
    if (myDevnos.has(m.devno) || SYSTEM_MOUNTS.has(m.mountPoint)) continue;
    const under = await disksUnder(env, m.devno);
    if (under.includes(info.disk) && !mounted.includes(m)) problems.push(`${info.path} backs ${m.source || m.devno} mounted on ${m.mountPoint}: unmount it first`);
  }
  if (info.holders.length) problems.push(`${info.path} is in use by ${info.holders.join(', ')} (device-mapper/RAID): close those first`);
  const swaps = ((await readText(env.swaps)) ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0])
    .filter(Boolean);
  const swapOn = swaps.filter((s) => myNames.has(s));
  if (swapOn.length) problems.push(`${info.path} has active swap (${swapOn.join(', ')}): swapoff first`);

  if (info.partition && !ctx.forceDevice) problems.push(`${info.path} is a partition (${info.name} of ${info.disk}): give the whole card, /dev/${info.disk}, or --force-device`);
  if (!info.partition && !info.removable && !ctx.forceDevice) problems.push(`${info.path} (${describe(info)}) is not a removable device: if it really is the card to flash, add --force-device`);
  if (info.size < ctx.imageSize) problems.push(`${info.path} holds ${info.size} bytes, smaller than the ${ctx.imageSize}-byte image: use a bigger card`);
  return problems;
}

export function describe(info: BlockInfo): string {
  const gb = (info.size / 1e9).toFixed(1);
  const model = [info.vendor, info.model].filter(Boolean).join(' ') || 'unknown model';
  return `${model}, ${gb} GB${info.serial ? `, serial ${info.serial}` : ''}${info.removable ? ', removable' : ''}`;
}
