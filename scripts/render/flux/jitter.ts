// Per-device poll interval. Thousands of devices polling the Git host on the same 5-minute beat would
// arrive in bursts after every site power cut; a different period per device drifts them apart within a
// few cycles, deterministically (same id -> same interval, so rebuilds are byte-identical).
// Flux adds its own random +/-5% on top (`--interval-jitter-percentage`, source-controller >= v1.2 / Flux
// v2.2); that alone is re-drawn each cycle and can't be reasoned about per device, so we keep both.
import { createHash } from 'node:crypto';

const UNIT_S: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** "1h30m" -> 5400. Accepts what the inventory schema accepts (ms, s, m, h, concatenated). */
export function parseDuration(text: string): number {
  const re = /([0-9]+)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * UNIT_S[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== text.length || consumed === 0) throw new Error(`not a duration: "${text}" (use e.g. 30s, 5m, 1h30m)`);
  return total;
}

/** 317 -> "5m17s"; whole seconds only (Flux parses Go durations). */
export function formatDuration(seconds: number): string {
  let s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}

/** The jitter window as a fraction of the base interval: devices poll every [base, base * (1 + JITTER_FRACTION)). */
export const JITTER_FRACTION = 0.2;

export interface PollInterval {
  baseSeconds: number;
  /** what this device adds to the base, 0 <= offset < base * JITTER_FRACTION */
  offsetSeconds: number;
  seconds: number;
  /** Go duration for GitRepository.spec.interval */
  text: string;
}

/** A stable number in [0, 1) from the device id (first 48 bits of its sha256). */
export function idFraction(id: string): number {
  const h = createHash('sha256').update(`edgeforge-flux-jitter:${id}`).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The device's Git poll interval: the inventory's interval plus a per-device offset, never shorter than
 * asked (an operator who sets 5m must not see 4m40s polls). Window: 20% of the base, whole seconds.
 */
export function devicePollInterval(deviceId: string, baseInterval: string): PollInterval {
  const base = Math.max(1, Math.round(parseDuration(baseInterval)));
  const window = Math.floor(base * JITTER_FRACTION);
  const offset = window > 0 ? Math.floor(idFraction(deviceId) * window) : 0;
  return { baseSeconds: base, offsetSeconds: offset, seconds: base + offset, text: formatDuration(base + offset) };
}
