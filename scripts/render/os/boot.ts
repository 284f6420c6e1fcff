// What the boot loaders of the A/B layouts read (docs/os-updates.md). Pure: text and bytes.
//   UEFI: GRUB's configuration on the ESP and its environment block (grubenv), in the variables RAUC's GRUB
//         backend reads and writes: ORDER (slots in boot order), <slot>_OK (marked good), <slot>_TRY (its one
//         try is in use: it booted and has not been marked good since).
//   Raspberry Pi: the firmware's autoboot.txt (which boot partition boots normally, which one on a tryboot)
//         and each boot partition's cmdline.txt (its own root partition and slot name).
import { OS_UPDATE } from '../../device/layout.ts';

export const SLOTS = OS_UPDATE.slotNames;
export type SlotName = (typeof SLOTS)[number];

/** GRUB's environment block: exactly 1024 bytes, "# GRUB Environment Block\n", KEY=value lines, '#' padding. */
export const GRUBENV_SIZE = 1024;
const GRUBENV_HEADER = '# GRUB Environment Block\n';

export function grubEnvBlock(vars: [string, string][]): Buffer {
  let text = GRUBENV_HEADER;
  for (const [k, v] of vars) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /[\n\\]/.test(v)) throw new Error(`grubenv: cannot store ${k}=${JSON.stringify(v)}`);
    text += `${k}=${v}\n`;
  }
  if (text.length > GRUBENV_SIZE) throw new Error(`grubenv: ${text.length} bytes do not fit its ${GRUBENV_SIZE}`);
  return Buffer.from(text.padEnd(GRUBENV_SIZE, '#'), 'latin1');
}

/** The environment a new card starts with: slot A holds the base and is good; slot B is empty and never tried. */
export function initialGrubEnv(): [string, string][] {
  return [
    ['ORDER', 'A B'],
    ['A_OK', '1'],
    ['A_TRY', '0'],
    ['B_OK', '0'],
    ['B_TRY', '0'],
  ];
}

export interface GrubSlot {
  name: SlotName;
  /** GPT partition number of the slot's root on the card */
  partition: number;
  /** its unique partition GUID: root=PARTUUID= */
  partuuid: string;
}

export interface GrubOptions {
  slots: GrubSlot[];
  /** kernel and initrd paths inside a root slot */
  kernel: string;
  initrd: string;
  /** the base's kernel arguments (console, ro, ...) */
  args: string[];
}

/**
 * GRUB's A/B selection. The first slot of ORDER that is marked good and whose try is not in use boots; its try
 * is used up before it boots, so a slot that panics, hangs or fails its health check (and is not marked good
 * again) is skipped at the next boot. When no slot qualifies, the first slot still marked good, then the first
 * of ORDER: a card never stops at a prompt. An unreadable environment means ORDER "A B" with both good.
 * `edgeforge_args` in the environment adds kernel arguments (the boot test's short backoff, debugging).
 */
export function grubConfig(o: GrubOptions): string {
  const args = o.args.join(' ');
  const pick = (cond: string) => [
    'for s in ${ORDER}; do',
    '  if [ -z "${slot}" ]; then',
    '    if [ "${s}" = "A" ]; then ok="${A_OK}"; try="${A_TRY}"; else ok="${B_OK}"; try="${B_TRY}"; fi',
    `    if ${cond}; then slot="\${s}"; fi`,
    '  fi',
    'done',
  ];
  const entries = o.slots.flatMap((s) => [
    `menuentry "edgeforge slot ${s.name}" --id ${s.name} {`,
    `  linux (\${disk},gpt${s.partition})${o.kernel} root=PARTUUID=${s.partuuid.toLowerCase()} rauc.slot=${s.name} panic=10 ${args} \${edgeforge_args}`,
    `  initrd (\${disk},gpt${s.partition})${o.initrd}`,
    '}',
  ]);
  return [
    '# written by edgeforge: A/B boot selection for RAUC (docs/os-updates.md); `edgeforge build` writes it,',
    '# RAUC (grub-editenv) and this script change only grubenv beside it.',
    'set timeout=0',
    'set envfile="${config_directory}/grubenv"',
    'set ORDER=""',
    'load_env --file "${envfile}" ORDER A_OK A_TRY B_OK B_TRY edgeforge_args',
    'if [ -z "${ORDER}" ]; then set ORDER="A B"; set A_OK=1; set A_TRY=0; set B_OK=1; set B_TRY=0; fi',
    '# the disk GRUB was loaded from (the ESP is on it): "hd0,gpt1" -> "hd0"',
    // (single quotes: in double quotes GRUB reads "$" before the closing quote as a variable)
    'regexp --set 1:disk \'^(.*),gpt[0-9]+$\' "${root}"',
    'set slot=""',
    ...pick('[ "${ok}" = "1" -a "${try}" = "0" ]'),
    ...pick('[ "${ok}" = "1" ]'),
    'if [ -z "${slot}" ]; then for s in ${ORDER}; do if [ -z "${slot}" ]; then slot="${s}"; fi; done; fi',
    "# this boot uses the slot's one try: only `rauc status mark-good` (the health check) gives it back",
    // (the initramfs finds root=PARTUUID= in lower case only: found booting the A/B card)
    // (fallback takes an entry's number in GRUB 2.06, not its id: A is entry 0, B entry 1)
    'if [ "${slot}" = "A" ]; then set A_TRY=1; save_env --file "${envfile}" A_TRY; set other=1; else set B_TRY=1; save_env --file "${envfile}" B_TRY; set other=0; fi',
    'set default="${slot}"',
    '# the chosen slot cannot be loaded (an empty slot, a missing kernel): the other one',
    'set fallback="${other}"',
    ...entries,
    '',
  ].join('\n');
}

/** Raspberry Pi autoboot.txt (firmware tryboot, tryboot_a_b=1): `normal` boots, `trial` boots once after `reboot "0 tryboot"`. */
export function autobootTxt(normal: number, trial: number): string {
  return ['[all]', 'tryboot_a_b=1', `boot_partition=${normal}`, '[tryboot]', `boot_partition=${trial}`, ''].join('\n');
}

/** A slot's cmdline.txt: the base's line with root= pointing at the slot's root and rauc.slot= naming it. */
export function slotCmdline(line: string, rootDevice: string, slot: SlotName): string {
  const tokens = line
    .trim()
    .split(/\s+/)
    .filter((t) => t && !t.startsWith('root=') && !t.startsWith('rauc.slot=') && !t.startsWith('panic='));
  return [...tokens, `root=${rootDevice}`, `rauc.slot=${slot}`, 'panic=10'].join(' ') + '\n';
}
