// The fleet's status from what the broker holds: every device of the inventory joined with its retained
// report and the last build's manifest, put in one bucket, with a reason when a person is needed. Pure:
// the reports, the manifest's bundle hashes and the clock come in as values.
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { deviceK3sVersion, ringOf } from '../render/day2/rings.ts';
import type { StatusReport, Rejection } from './report.ts';

/**
 * A first-boot step still failing after this many attempts needs a look: with the service's backoff (30 s doubling,
 * capped at 15 min, jittered to half..all) the five waits before a sixth attempt add up to 7.75-15.5 minutes
 * (30+60+120+240+480 s, halved at the least) of a network or tang outage, plus the attempts themselves.
 */
export const RETRY_ATTENTION_ATTEMPTS = 6;

export const BUCKETS = ['upToDate', 'behind', 'firstBoot', 'failed', 'locked', 'silent', 'neverSeen'] as const;
export type Bucket = (typeof BUCKETS)[number];
export const BUCKET_LABELS: Record<Bucket, string> = {
  upToDate: 'up to date',
  behind: 'behind',
  firstBoot: 'first boot in progress',
  failed: 'failed',
  locked: 'locked',
  silent: 'silent',
  neverSeen: 'never seen',
};

export interface DeviceState {
  id: string;
  site: string;
  bucket: Bucket;
  /** set when a person is needed */
  attention?: string;
  /** notes that do not need a person (e.g. a first boot running now) */
  note?: string;
  lastReport?: string;
  report?: StatusReport;
}

export interface SiteCounts {
  site: string;
  devices: number;
  counts: Record<Bucket, number>;
}

export interface FleetStatus {
  at: string;
  sites: SiteCounts[];
  totals: Record<Bucket, number>;
  attention: { id: string; site: string; bucket: Bucket; reason: string }[];
  devices: DeviceState[];
  ignored: Record<Rejection | 'unknown-device', number>;
  /** revoked/lost/stolen/retired/replaced devices whose status is still on the broker */
  inactive: { id: string; site: string; status: string; lastReport: string; reason: string }[];
  /** the inactive devices that reported after they were revoked: the broker still accepts them */
  inactiveNeedsPerson: string[];
}

export interface SummaryInput {
  devices: ResolvedDevice[];
  reports: Map<string, StatusReport>;
  ignored: FleetStatus['ignored'];
  /** device id -> bundle hash of the last build (manifest); undefined: no manifest */
  built?: Map<string, string>;
  /** the inventory's K3s settings: a device should run its ring's version (day2/rings.ts) */
  k3s: Fleet['k3s'];
  now: Date;
  periodSec: number;
  /** a report older than this is silent */
  staleSec: number;
  /** per site: a device silent for less than this does not need a person yet (the site's offline tolerance) */
  offlineToleranceSec?: Map<string, number>;
  /** how long the broker keeps a status (message expiry) */
  expirySec: number;
  /** device id -> last time any status was seen (an earlier run of `status`) */
  lastSeen?: Map<string, string>;
  /** certificates expiring sooner than this need a person */
  certWarnSec?: number;
  /** a first boot running longer than this needs a person */
  firstBootStuckSec?: number;
  /** statuses of devices that are no longer active (revoked, replaced...), by id */
  inactiveReports?: Map<string, { device: ResolvedDevice; report: StatusReport }>;
}

/**
 * A status from a device that left the fleet. Sent after its revocation, it means the broker still has its
 * user (broker-config not regenerated, or not reloaded): a person must act. Sent before, it is the last word of
 * a device that is gone, and expires by itself.
 */
export function inactiveNote(d: ResolvedDevice, r: StatusReport): { needsPerson: boolean; reason: string } {
  const revokedAt = d.revoked ? Date.parse(d.revoked.at) : NaN;
  if (Number.isFinite(revokedAt) && Date.parse(r.time) > revokedAt) {
    return { needsPerson: true, reason: `${d.status} since ${d.revoked!.at} but reported at ${r.time}: the broker still accepts its credential — run \`edgeforge status broker-config\` and reload the broker` };
  }
  return { needsPerson: false, reason: `${d.status}; its last status (${r.time}) stays on the broker until it expires` };
}

function ago(sec: number): string {
  const s = Math.abs(Math.round(sec));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

const zero = (): Record<Bucket, number> => Object.fromEntries(BUCKETS.map((b) => [b, 0])) as Record<Bucket, number>;

/** A silent device needs a person only once it has been silent longer than its site's offline tolerance. */
function withinTolerance(d: ResolvedDevice, silentSec: number, text: string, inp: SummaryInput): { attention: string } | { note: string } {
  const tol = inp.offlineToleranceSec?.get(d.siteId);
  if (tol === undefined || !Number.isFinite(silentSec) || silentSec > tol) return { attention: text };
  return { note: `${text}; within ${d.siteId}'s offline tolerance of ${ago(tol)}` };
}

export function classify(d: ResolvedDevice, r: StatusReport | undefined, inp: SummaryInput): DeviceState {
  const now = inp.now.getTime();
  const base = { id: d.id, site: d.siteId };
  const builtHash = inp.built?.get(d.id);
  if (!r) {
    const seen = inp.lastSeen?.get(d.id);
    if (seen) {
      const text = `silent: no status on the broker (a status expires ${ago(inp.expirySec)} after it was sent); last seen ${seen}`;
      return { ...base, bucket: 'silent', ...withinTolerance(d, (now - Date.parse(seen)) / 1000, text, inp), lastReport: seen };
    }
    if (inp.built && !builtHash) return { ...base, bucket: 'neverSeen', attention: 'not in the last build (build it, then flash or provision it)' };
    return { ...base, bucket: 'neverSeen', attention: 'no status yet: a flashed or provisioned device reports from its first boot on; check power, network, and that the broker has its user (edgeforge status broker-config)' };
  }
  const st: DeviceState = { ...base, bucket: 'upToDate', lastReport: r.time, report: r };
  const t = Date.parse(r.time);
  const age = (now - t) / 1000;
  const problems: string[] = [];
  // the broker drops a status `expirySec` after it arrives: one older than that (plus a period) was stamped by a wrong clock
  if (age < -inp.periodSec) problems.push(`its clock is ${ago(-age)} ahead of this machine's (report time ${r.time})`);
  else if (age > inp.expirySec + inp.periodSec) problems.push(`its clock is at least ${ago(age - inp.expirySec)} behind (report time ${r.time}, but the broker keeps a status only ${ago(inp.expirySec)})`);
  const clockWrong = problems.length > 0;

  if (!clockWrong && age > inp.staleSec) {
    st.bucket = 'silent';
    Object.assign(st, withinTolerance(d, age, `silent for ${ago(age)} (last report ${r.time}; first boot ${r.firstboot.state}${r.lastError ? `; last error: ${r.lastError}` : ''})`, inp));
    return st;
  }
  const fb = r.firstboot;
  if (fb.state === 'failed' && fb.retry === 'temporary') {
    // the first-boot service tries again by itself (backoff up to 15 min): first boot goes on, not failed
    st.bucket = 'firstBoot';
    const what = `first boot retrying step ${fb.step} (attempt ${fb.attempt ?? '?'}${fb.next ? `, next ${fb.next}` : ''}): ${fb.error || '(no message)'}`;
    if ((fb.attempt ?? 0) >= RETRY_ATTENTION_ATTEMPTS) problems.unshift(what);
    else st.note = what;
  } else if (fb.state === 'failed') {
    st.bucket = 'failed';
    problems.unshift(`first boot failed at step ${fb.step}${fb.retry === 'permanent' ? ' (permanent: not retried; fix the cause, then edgeforge-firstboot retry)' : ''}: ${fb.error || r.lastError || '(no message)'}`);
  } else if (r.dataVolume.state === 'locked') {
    st.bucket = 'locked';
    problems.unshift(`data volume locked${r.dataVolume.since ? ` since ${r.dataVolume.since}` : ''}: the site's tang server (or TPM policy) does not unlock it; K3s waits (${r.dataVolume.detail || 'no detail'})`);
  } else if (r.firstboot.state === 'running' || r.firstboot.state === 'pending') {
    st.bucket = 'firstBoot';
    const since = Date.parse(r.firstboot.at);
    const running = Number.isFinite(since) ? (now - since) / 1000 : 0;
    const stuck = inp.firstBootStuckSec ?? 3600;
    if (running > stuck) problems.unshift(`first boot at step ${r.firstboot.step} for ${ago(running)}`);
    else st.note = `first boot at step ${r.firstboot.step}`;
  } else {
    const behind: string[] = [];
    if (builtHash && r.applied.bundleSha256 !== builtHash) behind.push(`applied bundle ${r.applied.bundleSha256.slice(0, 12) || 'none'} is not the last build's ${builtHash.slice(0, 12)} (provision or reflash it)`);
    const want = deviceK3sVersion(d, { k3s: inp.k3s });
    if (r.k3s.version !== 'unknown' && r.k3s.version !== want) behind.push(`runs K3s ${r.k3s.version}, the inventory gives its ${ringOf(d)} ring ${want}`);
    if (r.gitops.ready === 'false') behind.push(`Flux is not Ready (applied revision ${r.gitops.revision})`);
    if (behind.length) {
      st.bucket = 'behind';
      problems.unshift(...behind);
    }
  }
  const notAfter = Date.parse(r.k3s.certNotAfter);
  if (Number.isFinite(notAfter) && (notAfter - now) / 1000 < (inp.certWarnSec ?? 30 * 86400)) {
    problems.push(notAfter < now ? `K3s serving certificate expired ${r.k3s.certNotAfter}` : `K3s serving certificate expires ${r.k3s.certNotAfter} (in ${ago((notAfter - now) / 1000)})`);
  }
  if (problems.length) st.attention = problems.join('; ');
  return st;
}

export function summarize(inp: SummaryInput): FleetStatus {
  const bySite = new Map<string, SiteCounts>();
  const totals = zero();
  const devices: DeviceState[] = [];
  for (const d of inp.devices) {
    const s = classify(d, inp.reports.get(d.id), inp);
    devices.push(s);
    let c = bySite.get(d.siteId);
    if (!c) bySite.set(d.siteId, (c = { site: d.siteId, devices: 0, counts: zero() }));
    c.devices++;
    c.counts[s.bucket]++;
    totals[s.bucket]++;
  }
  const inactive = [...(inp.inactiveReports?.values() ?? [])].map(({ device: d, report: r }) => {
    const n = inactiveNote(d, r);
    return { id: d.id, site: d.siteId, status: d.status, lastReport: r.time, reason: n.reason, needsPerson: n.needsPerson };
  });
  return {
    at: inp.now.toISOString(),
    sites: [...bySite.values()],
    totals,
    attention: devices.filter((s) => s.attention).map((s) => ({ id: s.id, site: s.site, bucket: s.bucket, reason: s.attention! })),
    devices,
    ignored: inp.ignored,
    inactive: inactive.map(({ needsPerson: _n, ...x }) => x),
    inactiveNeedsPerson: inactive.filter((x) => x.needsPerson).map((x) => x.id),
  };
}
