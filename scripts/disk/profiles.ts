// Base image profiles (images/profiles/*.yaml): where the seed goes in a given kind of base image and which
// boot files get edited. Documented in images/README.md.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import { SEED_LABEL } from '../device/layout.ts';

export const PROFILES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../images/profiles');

const Sha = z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256: 64 hex digits');

const FatPartitionSeed = z.strictObject({
  /** write into an existing FAT partition of the base (Raspberry Pi system-boot, or an ESP) */
  mode: z.literal('fat-partition'),
  /** how to find it: FAT volume label and/or partition number (1-based) */
  match: z.strictObject({ label: z.string().optional(), number: z.number().int().min(1).optional() }).refine((m) => m.label || m.number, 'give a label or a number'),
  /** directory inside the FAT for the seed files ('' = the root) */
  dir: z.string().default(''),
  /** default seed files of the base removed when the device has no file of that name */
  removeDefaults: z.array(z.string()).default(['user-data', 'meta-data', 'network-config']),
});

const CidataPartitionSeed = z.strictObject({
  /** add a small FAT partition labelled CIDATA in free space before the last partition (GPT only) */
  mode: z.literal('cidata-partition'),
  label: z.string().max(11).default(SEED_LABEL),
  minBytes: z
    .number()
    .int()
    .positive()
    .default(512 * 1024),
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  /** partition start alignment in 512-byte sectors */
  alignSectors: z.number().int().positive().default(8),
});

/** UEFI A/B (docs/os-updates.md): GRUB on the ESP picks the root slot; edgeforge writes its config and environment there. */
const GrubAb = z.strictObject({
  bootloader: z.literal('grub'),
  /** the ESP file the base's GRUB reads its configuration from (its prefix); grubenv goes beside it */
  grubConfig: z.string().regex(/^[A-Za-z0-9_./-]+\.cfg$/),
  /** kernel and initrd inside a root slot */
  kernel: z
    .string()
    .regex(/^\/\S+$/)
    .default('/vmlinuz'),
  initrd: z
    .string()
    .regex(/^\/\S+$/)
    .default('/initrd.img'),
  /** the base's own kernel arguments (root= and rauc.slot= are added per slot) */
  kernelArgs: z.array(z.string().regex(/^\S+$/)).default(['ro', 'rootwait']),
});

/** Raspberry Pi A/B: the firmware's autoboot.txt picks the boot partition, tryboot boots the other one once. */
const TrybootAb = z.strictObject({
  bootloader: z.literal('tryboot'),
  /** the kernel command line file in a boot partition */
  cmdline: z.string().default('cmdline.txt'),
});

export const ProfileSchema = z.strictObject({
  name: z.string(),
  description: z.string().default(''),
  partitionTable: z.enum(['mbr', 'gpt']),
  seed: z.discriminatedUnion('mode', [FatPartitionSeed, CidataPartitionSeed]),
  /** kernel command line edits (Raspberry Pi cmdline.txt): tokens appended once, idempotently */
  cmdline: z.strictObject({ file: z.string(), append: z.array(z.string().regex(/^\S+$/)) }).optional(),
  /** optional default base image; the inventory or --base-image usually gives it */
  base: z.strictObject({ path: z.string(), sha256: Sha }).optional(),
  /** commands the base image must have, with the Debian package that brings each (provision preflight checks them) */
  requires: z.array(z.strictObject({ command: z.string().regex(/^[a-z0-9_.-]+$/), package: z.string(), for: z.string() })).default([]),
  /** why the free space after the last partition must stay free (documentation carried with the profile) */
  dataVolume: z.strictObject({ placement: z.literal('free-space-after-last-partition'), minBytes: z.number().int().nonnegative().default(0) }).optional(),
  /** how a base of this kind becomes an A/B card (inventory os:, docs/os-updates.md) */
  ab: z.discriminatedUnion('bootloader', [GrubAb, TrybootAb]).optional(),
});

export type Profile = z.infer<typeof ProfileSchema>;

export function parseProfile(text: string, where: string): Profile {
  const r = ProfileSchema.safeParse(parse(text));
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${where}: ${i.path.join('.') || '(top)'}: ${i.message}`).join('\n');
    throw new Error(msg);
  }
  return r.data;
}

/** A profile by name (images/profiles/NAME.yaml) or by path. */
export async function loadProfile(nameOrPath: string, dir = PROFILES_DIR): Promise<Profile> {
  const file = /[/\\]|\.ya?ml$|\.json$/.test(nameOrPath) ? path.resolve(nameOrPath) : path.join(dir, `${nameOrPath}.yaml`);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    const known = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5));
    throw new Error(`base image profile not found: ${nameOrPath} (known: ${known.join(', ') || 'none'})`);
  }
  return parseProfile(text, file);
}
