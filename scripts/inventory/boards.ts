// What Linux can use of a board's RAM. A "2 GB" board never gives the kernel 2048 MiB: the firmware keeps a
// share for the GPU, and the kernel's own page descriptors (struct page, 64 bytes per 4 KiB page on arm64) are
// taken before MemTotal is counted. The memory budget works from what is left; a profile's `usableRamMiB`
// (the board's MemTotal: `grep MemTotal /proc/meminfo`) overrides the estimate.
import type { Profile } from './schema.ts';

export interface BoardMemory {
  /** MiB the firmware keeps from Linux */
  firmwareMiB: number;
  /** where that number comes from */
  source: string;
}

export const BOARD_MEMORY: Record<Profile['board'], BoardMemory> = {
  'raspberry-pi-4': { firmwareMiB: 76, source: 'gpu_mem default 76 MB on a Pi 4 (Raspberry Pi documentation, config.txt "Memory options")' },
  'raspberry-pi-cm4': { firmwareMiB: 76, source: 'gpu_mem default 76 MB, as on the Pi 4 (same BCM2711; Raspberry Pi documentation, config.txt "Memory options")' },
  'raspberry-pi-5': { firmwareMiB: 0, source: "no firmware share known to edgeforge for the Pi 5: set usableRamMiB from the board's MemTotal" },
  'generic-uefi': { firmwareMiB: 0, source: "UEFI firmware reservations vary by vendor: set usableRamMiB from the board's MemTotal" },
};

/** struct page on arm64 is 64 bytes per 4 KiB page: 1/64 of RAM never shows in MemTotal. */
export const PAGE_DESCRIPTOR_FRACTION = 1 / 64;

export interface UsableRam {
  mib: number;
  /** how the figure was reached */
  basis: string;
}

export function usableRam(p: Pick<Profile, 'board' | 'ramMiB' | 'usableRamMiB'>): UsableRam {
  if (p.usableRamMiB !== undefined) return { mib: p.usableRamMiB, basis: "the profile's usableRamMiB (measured MemTotal)" };
  const b = BOARD_MEMORY[p.board];
  const pages = Math.ceil(p.ramMiB * PAGE_DESCRIPTOR_FRACTION);
  return {
    mib: p.ramMiB - b.firmwareMiB - pages,
    basis: `estimate: ${p.ramMiB} MiB nominal − ${b.firmwareMiB} MiB firmware (${b.source}) − ${pages} MiB page descriptors (64 B per 4 KiB page); the kernel image takes a few MiB more — set usableRamMiB to the board's MemTotal to budget exactly`,
  };
}
