// One device's status document as the reporter sends it (scripts/render/status/sh/status-report.sh), and
// its checked reading: anything malformed, oversized or claiming another device's name is refused here,
// counted by the caller, and never crashes `edgeforge status`.
import { z } from 'zod';

export const STATUS_FORMAT = 'edgeforge-status/1';
/** a real report is ~1 KiB; the broker config refuses over 16 KiB, the CLI over this */
export const MAX_STATUS_BYTES = 8192;

const str = z.string().max(1024);
export const StatusReportSchema = z.object({
  format: z.literal(STATUS_FORMAT),
  device: z.string().min(1).max(63),
  fleet: str,
  site: str,
  time: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
  firstboot: z.object({
    step: str,
    state: z.enum(['pending', 'running', 'failed', 'done']),
    at: str,
    error: str,
    /** after a failure: the first-boot service retries it (temporary, at `next`) or it waits for a person (permanent); absent from reporters older than the retrying first-boot service */
    retry: z.enum(['', 'temporary', 'permanent']).optional(),
    attempt: z.number().int().nonnegative().optional(),
    next: str.optional(),
  }),
  lastError: str,
  applied: z.object({ bundleSha256: z.string().regex(/^([0-9a-f]{64})?$/), at: str }),
  gitops: z.object({ revision: str, ready: z.enum(['true', 'false', 'unknown']) }),
  k3s: z.object({ version: str, certNotAfter: str }),
  dataVolume: z.object({ state: z.enum(['unlocked', 'locked', 'none', 'unknown']), since: str, detail: str }),
  disk: z.object({ freeMiB: z.number().int() }),
  uptimeSec: z.number().int(),
  reporter: z.object({ memoryPeakKiB: z.number().int().nullable() }).optional(),
  /** devices with A/B OS updates (docs/os-updates.md): the running slot, each slot's release, a trial, the last rollback */
  os: z
    .object({
      slot: str,
      version: str,
      slots: z.object({ A: str, B: str }),
      trial: z.object({ slot: str, version: str, at: str }),
      rollback: z.object({ version: str, at: str, count: z.number().int().nonnegative(), reason: str }),
      note: str,
    })
    .optional(),
});
export type StatusReport = z.infer<typeof StatusReportSchema>;

export type Rejection = 'oversized' | 'malformed' | 'wrong-device';

/** A status payload for `deviceId` (from its topic), or why it is ignored. */
export function readStatus(payload: Uint8Array, deviceId: string): { ok: true; report: StatusReport } | { ok: false; why: Rejection } {
  if (payload.length > MAX_STATUS_BYTES) return { ok: false, why: 'oversized' };
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return { ok: false, why: 'malformed' };
  }
  const r = StatusReportSchema.safeParse(v);
  if (!r.success) return { ok: false, why: 'malformed' };
  if (r.data.device !== deviceId) return { ok: false, why: 'wrong-device' };
  return { ok: true, report: r.data };
}
