// The A/B layouts' partitions and names (docs/os-updates.md): one definition for the image builder
// (scripts/disk/ab-base.ts) and for what the device is told. Pure.
//
//   uefi-gpt:  p1 ESP (GPT name edgeforge-esp: GRUB, its environment, edgeforge's shared state)
//              p2 root A (edgeforge-root-a)   p3 root B (edgeforge-root-b)
//              [p4 EFK3S airgap]  [CIDATA seed in the gap before p1]  [data volume: appended at first boot]
//   raspi-mbr: p1 boot-select FAT "EFSHARED" (autoboot.txt, shared state)   p2 boot A   p3 boot B
//              p4 extended: p5 root A   p6 root B   p7 data volume (made with the card: no primary is left)
import { createHash } from 'node:crypto';
import { OS_UPDATE } from '../../device/layout.ts';
import { shq } from '../../util/shell.ts';
import type { OsLayout } from '../../inventory/schema.ts';

export const UEFI_PARTS = { esp: 1, rootA: 2, rootB: 3 } as const;
export const PI_PARTS = { select: 1, bootA: 2, bootB: 3, extended: 4, rootA: 5, rootB: 6, data: 7 } as const;

/** The Raspberry Pi layout's MBR disk signature: from the fleet's name, so a device's seed can name its partitions (PARTUUID=SIG-NN). */
export function piDiskSignature(fleet: string): number {
  const n = createHash('sha256').update(`edgeforge-ab-mbr:${fleet}`).digest().readUInt32LE(0);
  return n === 0 ? 1 : n;
}

export function piPartuuid(fleet: string, part: number): string {
  return `${piDiskSignature(fleet).toString(16).padStart(8, '0')}-${part.toString(16).padStart(2, '0')}`;
}

/** The Raspberry Pi layout's data partition, made with the card (its MBR has no primary slot left to append one). */
export function piDataPartition(fleet: string): string {
  return `/dev/disk/by-partuuid/${piPartuuid(fleet, PI_PARTS.data)}`;
}

/** How the device finds the partition both slots share. */
export function sharedDevice(layout: OsLayout): string {
  return layout === 'uefi-gpt' ? `/dev/disk/by-partlabel/${OS_UPDATE.sharedGptName}` : `/dev/disk/by-label/${OS_UPDATE.sharedFatLabel}`;
}

/** The facts of one card's layout, written on its shared partition when the card is made (EF_AB_* lines the device programs read). */
export interface LayoutFacts {
  layout: OsLayout;
  /** root slot devices and their PARTUUIDs (A, B) */
  roots: [string, string];
  rootUuids: [string, string];
  /** Raspberry Pi: boot partition devices and numbers (A, B) */
  boots?: [string, string];
  bootParts?: [number, number];
  /** UEFI: GRUB's environment file, relative to the shared partition */
  grubenv?: string;
}

export function layoutFile(f: LayoutFacts): string {
  const vars: [string, string][] = [
    ['EF_AB_LAYOUT', f.layout],
    ['EF_AB_ROOT_A', f.roots[0]],
    ['EF_AB_ROOT_B', f.roots[1]],
    ['EF_AB_UUID_A', f.rootUuids[0]],
    ['EF_AB_UUID_B', f.rootUuids[1]],
  ];
  if (f.grubenv) vars.push(['EF_AB_GRUBENV', f.grubenv]);
  if (f.boots && f.bootParts) vars.push(['EF_AB_BOOT_A', f.boots[0]], ['EF_AB_BOOT_B', f.boots[1]], ['EF_AB_PART_A', String(f.bootParts[0])], ['EF_AB_PART_B', String(f.bootParts[1])]);
  return ['# written by edgeforge when this card was made: its A/B layout (docs/os-updates.md)', ...vars.map(([k, v]) => `${k}=${shq(v)}`), ''].join('\n');
}

/**
 * TEXT (ending in a newline) padded with comment lines ('#', at most 64 bytes each, a last shorter one) to exactly
 * `bytes` bytes, so that the device can overwrite it in place (fixed_text in render/shell/core.sh pads the same way).
 */
export function fixedSizeText(text: string, bytes: number): string {
  let n = bytes - Buffer.byteLength(text);
  if (n < 0 || !text.endsWith('\n')) throw new Error(`fixedSizeText: ${Buffer.byteLength(text)} bytes do not fit in ${bytes}`);
  let pad = '';
  for (; n >= 64; n -= 64) pad += `${'#'.repeat(63)}\n`;
  if (n > 0) pad += `${'#'.repeat(n - 1)}\n`;
  return text + pad;
}

export type StateKey = (typeof OS_UPDATE.stateKeys)[number];
export type StateFields = Partial<Record<StateKey, string>>;

const STATE_HEAD = '# edgeforge OS updates: which slot holds which release, the trial in progress, the last rollback';
/** what the device's os_state_set keeps of a value: printable ASCII without quotes, 240 bytes */
const stateValue = (v: string) => v.replace(/[^ -&(-~]/g, '').slice(0, 240);

/** One record of the shared OS state (the format of os-state.sh): SEQ, every key, the checksum, padding. */
export function stateRecord(fields: StateFields, seq: number): string {
  const body = [STATE_HEAD, `SEQ='${seq}'`, ...OS_UPDATE.stateKeys.map((k) => `${k}='${stateValue(fields[k] ?? '')}'`)].join('\n') + '\n';
  const sum = createHash('sha256').update(body).digest('hex');
  return fixedSizeText(`${body}SUM='${sum}'\n`, OS_UPDATE.stateRecordBytes);
}

/** The two record files of the shared OS state, both valid, the current one saying `fields`. */
export function stateRecordFiles(fields: StateFields): { rel: string; text: string }[] {
  return [
    { rel: `${OS_UPDATE.stateRel}.0`, text: stateRecord(fields, 1) },
    { rel: `${OS_UPDATE.stateRel}.1`, text: stateRecord(fields, 0) },
  ];
}

/** The shared state a new card starts with: slot A holds `version`, slot B nothing yet. */
export function initialStateRecords(version: string): { rel: string; text: string }[] {
  return stateRecordFiles({ A_VERSION: version });
}

/** A record's fields and SEQ when its checksum holds (as os_record reads it). */
export function readStateRecord(text: string): { seq: number; fields: Record<string, string> } | undefined {
  const m = /^([\s\S]*?)^SUM='([0-9a-f]{64})'$/m.exec(text);
  if (!m || createHash('sha256').update(m[1]).digest('hex') !== m[2]) return undefined;
  const fields: Record<string, string> = {};
  for (const [, k, v] of m[1].matchAll(/^([A-Z_]+)='(.*)'$/gm)) fields[k] = v;
  const seq = Number(fields.SEQ);
  return Number.isInteger(seq) ? { seq, fields } : undefined;
}

/** The current state among the records (the valid one with the higher SEQ), as the device reads it. */
export function currentState(records: (string | undefined)[]): Record<string, string> | undefined {
  let best: { seq: number; fields: Record<string, string> } | undefined;
  for (const r of records) {
    const rec = r === undefined ? undefined : readStateRecord(r);
    if (rec && (!best || rec.seq > best.seq)) best = rec;
  }
  return best?.fields;
}

/** RAUC's compatible string: a bundle installs only on the fleet and layout it was made for. */
export function osCompatible(fleet: string, layout: OsLayout): string {
  return `edgeforge/${fleet}/${layout}`;
}

/** The file name `edgeforge os bundle` gives a release's bundle. */
export function bundleFileName(version: string, layout: OsLayout): string {
  return `edgeforge-os-${version}-${layout}.raucb`;
}

/** The bundle's RAUC manifest (manifest.raucm): verity format, the root image, and on a Raspberry Pi the boot image. */
export function raucManifest(o: { fleet: string; layout: OsLayout; version: string; baseSha256: string }): string {
  return [
    '[update]',
    `compatible=${osCompatible(o.fleet, o.layout)}`,
    `version=${o.version}`,
    `description=edgeforge OS ${o.version} (${o.layout}) from base image ${o.baseSha256}`,
    '',
    '[bundle]',
    'format=verity',
    '',
    '[image.rootfs]',
    'filename=rootfs.ext4',
    ...(o.layout === 'raspi-mbr' ? ['', '[image.boot]', 'filename=boot.vfat'] : []),
    '',
  ].join('\n');
}
