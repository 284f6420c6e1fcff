// The A/B card in the boot test (docs/os-updates.md): booted through the UEFI firmware and GRUB, never with
// -kernel (GRUB picks the slot). Test-only kernel arguments go through GRUB's environment (edgeforge_args, read
// by the configuration edgeforge writes), and the environment is read back from the ESP with grub-editenv.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Debian's AArch64 UEFI firmware (package qemu-efi-aarch64) */
export const FIRMWARE = '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd';

const MT = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/** the ESP's start (bytes): the first partition of GPT type ESP, from sfdisk */
export function espOffset(image: string): number {
  const t = JSON.parse(execFileSync('sfdisk', ['-J', image], { encoding: 'utf8' })).partitiontable;
  const esp = t.partitions.find((p: { type: string }) => p.type === 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  if (!esp) throw new Error(`${image} has no ESP`);
  return esp.start * 512;
}

/** a file of the ESP, or undefined */
export function espRead(image: string, file: string): Buffer | undefined {
  try {
    return execFileSync('mtype', ['-i', `${image}@@${espOffset(image)}`, `::${file}`], { env: MT });
  } catch {
    return undefined;
  }
}

/** where GRUB's environment is on this card's ESP (its layout file says), or undefined when it is not an A/B card */
export function grubenvPath(image: string): string | undefined {
  const layout = espRead(image, 'edgeforge/os-layout')?.toString('utf8');
  return layout ? /^EF_AB_GRUBENV='?([^'\n]+)'?$/m.exec(layout)?.[1] : undefined;
}

/** GRUB's environment on the card, as grub-editenv lists it */
export function readGrubEnv(image: string): Record<string, string> {
  const rel = grubenvPath(image);
  if (!rel) throw new Error(`${image} is not an A/B card (no edgeforge/os-layout on its ESP)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-grubenv-'));
  try {
    const f = path.join(dir, 'grubenv');
    writeFileSync(f, espRead(image, rel) ?? Buffer.alloc(0));
    const out = execFileSync('grub-editenv', [f, 'list'], { encoding: 'utf8' });
    return Object.fromEntries(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sets edgeforge_args in the card's GRUB environment (the next boot's extra kernel arguments); '' clears them. */
export function setGrubArgs(image: string, args: string): void {
  const rel = grubenvPath(image);
  if (!rel) throw new Error(`${image} is not an A/B card`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-grubenv-'));
  try {
    const f = path.join(dir, 'grubenv');
    writeFileSync(f, espRead(image, rel) ?? Buffer.alloc(0));
    if (args.trim()) execFileSync('grub-editenv', [f, 'set', `edgeforge_args=${args.trim()}`]);
    else execFileSync('grub-editenv', [f, 'unset', 'edgeforge_args']);
    if (readFileSync(f).length !== 1024) throw new Error('grub-editenv left an environment block of the wrong size');
    // in place, over the same clusters: GRUB's save_env writes the file where it lies
    execFileSync('mcopy', ['-o', '-i', `${image}@@${espOffset(image)}`, f, `::${rel}`], { env: MT });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
