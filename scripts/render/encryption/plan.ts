// The per-device encryption plan: which cipher, which key-derivation cost, which clevis pins, where the
// volume lives and what is mounted from it. Pure: device + the saved tang advertisements -> plan.
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import type { Profile } from '../../inventory/schema.ts';
import { DATA_VOLUME } from '../../device/layout.ts';
import { verifyAdvertisement } from './tang.ts';

/**
 * Argon2id memory cap (KiB). cryptsetup sizes argon2 from a benchmark of the machine that formats: up to
 * 1 GiB, or half of free RAM. A header made that way on a large machine cannot be opened on a 2 GB board,
 * and even on the board itself the unlock would compete with nothing but wastes seconds at every boot.
 * 256 MiB fits a 2 GB device (K3s is not running yet at unlock time); 1 GB boards get 1/8 of RAM.
 */
export const PBKDF_MEMORY_CAP_KIB = 262144;
/** argon2id time cost, fixed (--pbkdf-force-iterations) so formatting skips the benchmark and every device matches. */
export const PBKDF_ITERATIONS = 4;
/** Raspberry Pi 4/5, CM4 and most industrial boards have 4 cores; cryptsetup uses min(this, CPUs) threads. */
export const PBKDF_PARALLEL = 4;

export interface CipherChoice {
  cipher: string;
  keyBits: number;
  sectorSize: number;
  why: string;
}

export function chooseCipher(profile: Pick<Profile, 'cpuAes' | 'board'>): CipherChoice {
  if (profile.cpuAes) {
    return {
      cipher: 'aes-xts-plain64',
      keyBits: 512, // two AES-256 keys (XTS)
      sectorSize: 4096,
      why: 'the CPU has the ARMv8 Crypto Extensions: AES-XTS runs in hardware (~1 GB/s) and is the LUKS2 default',
    };
  }
  return {
    cipher: 'xchacha12,aes-adiantum-plain64',
    keyBits: 256,
    sectorSize: 4096, // Adiantum is a wide-block construction designed for 4 KiB sectors
    why:
      `${profile.board} has no AES instructions (the Raspberry Pi 4's Cortex-A72 lacks the Crypto Extensions): ` +
      'software AES-XTS runs at ~30-60 MB/s, slower than the SD card, and table-based AES leaks through cache timing. ' +
      'Adiantum (XChaCha12 + one AES block per sector, NH/Poly1305 hashing) is built for such CPUs: 3-5x faster, constant time, ' +
      'and as a wide-block mode a change anywhere in a sector changes the whole sector',
  };
}

export function pbkdfMemoryKiB(ramMiB: number): number {
  return Math.min(PBKDF_MEMORY_CAP_KIB, Math.floor((ramMiB * 1024) / 8));
}

export type ClevisPin = { pin: 'tang' | 'tpm2' | 'sss'; config: Record<string, unknown> };

/** TPM2 policy: PCR 7 (Secure Boot state) on UEFI boards; Raspberry Pis have no measured boot to bind to. */
export function tpm2Config(board: Profile['board']): Record<string, unknown> {
  return board === 'generic-uefi' ? { pcr_bank: 'sha256', pcr_ids: '7' } : {};
}

export interface EncryptionPlan {
  device: string;
  mode: ResolvedDevice['encryption']['mode'];
  cipher: CipherChoice;
  pbkdf: { type: 'argon2id'; memoryKiB: number; iterations: number; parallel: number };
  /** the profile's partition or disk; empty: append a partition in the free space after root */
  dataPartition: string;
  /** what `clevis luks bind` gets (absent for mode none) */
  clevis?: ClevisPin;
  /** the tang servers secrets can be sealed to offline (those with a saved, verified advertisement) */
  sealTo: { url: string; adv: ReturnType<typeof verifyAdvertisement> }[];
  /** tang servers without a saved advertisement: the device fetches it at bind time and checks the pinned thumbprint */
  onlineAdv: string[];
}

/**
 * `advertisements`: url -> advertisement text (the file named by `tang[].advertisement`, read by the build).
 * Throws when an advertisement is there but is not signed by the pinned thumbprint.
 */
export function encryptionPlan(d: ResolvedDevice, advertisements: Record<string, string> = {}): EncryptionPlan {
  const e = d.encryption;
  const plan: EncryptionPlan = {
    device: d.id,
    mode: e.mode,
    cipher: chooseCipher(d.profile),
    pbkdf: { type: 'argon2id', memoryKiB: pbkdfMemoryKiB(d.profile.ramMiB), iterations: PBKDF_ITERATIONS, parallel: PBKDF_PARALLEL },
    dataPartition: d.profile.storage.dataPartition ?? '',
    sealTo: [],
    onlineAdv: [],
  };
  if (e.mode === 'none') return plan;

  const tangPins: Record<string, unknown>[] = [];
  if (e.mode === 'tang' || e.mode === 'tang+tpm2') {
    for (const t of e.tang) {
      const text = advertisements[t.url];
      if (text === undefined) {
        plan.onlineAdv.push(t.url);
        tangPins.push({ url: t.url, thp: t.thumbprint });
        continue;
      }
      const adv = verifyAdvertisement(text, t.thumbprint, `${d.id}: the advertisement of ${t.url}${t.advertisement ? ` (${t.advertisement})` : ''}`);
      plan.sealTo.push({ url: t.url, adv });
      // adv as an object: clevis binds offline, and still checks it is signed by thp
      tangPins.push({ url: t.url, thp: t.thumbprint, adv: adv.jws });
    }
  }
  const tpm = e.mode === 'tpm2' || e.mode === 'tang+tpm2' ? tpm2Config(d.profile.board) : undefined;
  const pins = tangPins.length + (tpm ? 1 : 0);
  if (pins === 1) plan.clevis = tpm ? { pin: 'tpm2', config: tpm } : { pin: 'tang', config: tangPins[0] };
  else {
    const sss: Record<string, unknown> = {};
    if (tangPins.length) sss.tang = tangPins;
    if (tpm) sss.tpm2 = tpm;
    plan.clevis = { pin: 'sss', config: { t: Math.min(e.threshold, pins), pins: sss } };
  }
  return plan;
}

/**
 * What an admin runs on the device (console or SSH) to open the data volume by hand with the recovery
 * passphrase, e.g. when the site's tang server is gone for good. For `edgeforge keys recover ID`.
 * udev links LUKS2 labels under /dev/disk/by-label, so no partition path is needed.
 */
export function recoveryCommands(d: Pick<ResolvedDevice, 'id' | 'cluster'>): string[] {
  const k3s = d.cluster.kind === 'multi-node-agent' ? 'k3s-agent' : 'k3s';
  return [
    `# on ${d.id}, as root; type the recovery passphrase when asked`,
    `cryptsetup open /dev/disk/by-label/${DATA_VOLUME.name} ${DATA_VOLUME.name}`,
    `# the unlock service sees the volume open and finishes; the mounts and K3s follow`,
    `systemctl start ${DATA_VOLUME.binds.map((b) => unitNameOfMount(b.path)).join(' ')} ${k3s}`,
    `# then re-bind automatic unlock if the tang server or TPM changed (clevis luks bind -d /dev/disk/by-label/${DATA_VOLUME.name} ...)`,
  ];
}

/** systemd's mount unit name for a path (systemd-escape --path --suffix=mount) */
export function unitNameOfMount(p: string): string {
  const esc = p
    .replace(/^\/+|\/+$/g, '')
    .split('/')
    .map((c) => c.replace(/[^A-Za-z0-9:_.]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/^\./, '\\x2e'))
    .join('-');
  return `${esc || '-'}.mount`;
}
