// The fleet's status from what the broker holds: every device of the inventory joined with its retained
// report and the last build's manifest, put in one bucket, with a reason when a person is needed. How old a
// status is comes from the broker (arrival.ts), never from the report's own `time`, which only shows whether
// the device's clock is right. Pure: the reports, their arrivals, the manifest's bundle hashes and the clock
// come in as values.
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { deviceK3sVersion, ringOf } from '../render/day2/rings.ts';
import { deviceOsVersion } from '../render/os/ring.ts';
import { isAbDevice } from '../inventory/os.ts';
import type { StatusReport, Rejection } from './report.ts';
import type { Arrival } from './arrival.ts';

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
  /** the report's own time (the device clock) */
  lastReport?: string;
  /** when the broker received it (arrival.ts), when it can say */
  receivedAt?: string;
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
  /** revoked/lost/stolen/retired/replaced devices whose status is still on the broker (never counted above) */
  inactive: { id: string; site: string; status: string; lastReport?: string; receivedAt?: string; expiry: Arrival['expiry']; reason: string }[];
  /** the inactive devices whose status needs a person: received after the revoke, without expiry, or held too long */
  inactiveNeedsPerson: string[];
}

/** What the broker holds on the topic of a device that left the fleet: its status, or why that does not read. */
export interface InactiveReport {
  device: ResolvedDevice;
  report?: StatusReport;
  unreadable?: Rejection;
  arrival: Arrival;
}

export interface SummaryInput {
  devices: ResolvedDevice[];
  reports: Map<string, StatusReport>;
  /** device id -> when the broker received its status (arrival.ts) */
  arrivals: Map<string, Arrival>;
  ignored: FleetStatus['ignored'];
  /** device id -> bundle hash of the last build (manifest); undefined: no manifest */
  built?: Map<string, string>;
  /** the inventory's K3s settings: a device should run its ring's version (day2/rings.ts) */
  k3s: Fleet['k3s'];
  /** OS updates (docs/os-updates.md): an A/B device should run its ring's release */
  os?: Fleet['os'];
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
  inactiveReports?: Map<string, InactiveReport>;
}

/** A refused credential looks like silence from here: MQTT tells no client why another one was refused. */
export const REFUSED_HINT = 'or the broker refuses it (its log: "Client <unknown> disconnected, not authorised.")';

const CLEAR = 'edgeforge status --clear-departed';

/**
 * A status from a device that left the fleet. The reporter's last status expires at most two periods after it
 * was sent; one that reached the broker after the revocation means the broker still accepted the credential
 * (broker-config not rerun, or the broker not reloaded), and one without expiry was left by another client with
 * its credential and never goes away by itself: both need a person. The report's own time decides nothing.
 */
export function inactiveNote(d: ResolvedDevice, x: Omit<InactiveReport, 'device'>, now: Date, expirySec: number): { needsPerson: boolean; reason: string } {
  const a = x.arrival;
  const r = { time: x.report ? x.report.time : `unknown: its document is ${x.unreadable ?? 'unreadable'}` };
  const revokedAt = d.revoked ? Date.parse(d.revoked.at) : NaN;
  const since = d.revoked ? ` since ${d.revoked.at}` : '';
  if (a.expiry === 'none') {
    return {
      needsPerson: true,
      reason: `${d.status}${since}; its status (device time ${r.time}) has no message expiry — not the reporter's: another client used its credential (MQTT 3.1.1, v5 without expiry, or a will) — so it never leaves the broker and when it arrived is unknown: make sure \`edgeforge status broker-config\` ran and the broker was reloaded after the revoke, then clear it (${CLEAR})`,
    };
  }
  if (Number.isFinite(revokedAt) && a.at && a.at.getTime() > revokedAt) {
    return {
      needsPerson: true,
      reason: `${d.status}${since}, but this status reached the broker after that (at ${iso(a.at)} or later; its own time says ${r.time}): the broker still accepts its credential — run \`edgeforge status broker-config\` and reload the broker, then clear it (${CLEAR})`,
    };
  }
  if (Number.isFinite(revokedAt) && now.getTime() - revokedAt > expirySec * 1000) {
    return {
      needsPerson: true,
      reason: `${d.status}${since}; its status is still on the broker ${ago((now.getTime() - revokedAt) / 1000)} after the revoke, longer than a status the reporter sent before it can stay: it was sent with a longer expiry, after the revoke or by another client — make sure \`edgeforge status broker-config\` ran and the broker was reloaded, then clear it (${CLEAR})`,
    };
  }
  return { needsPerson: false, reason: `${d.status}${since}; its last status (device time ${r.time}) leaves the broker by itself in ${ago(a.leftSec ?? 0)}` };
}

const iso = (t: Date) => t.toISOString().replace(/\.\d{3}Z$/, 'Z');

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

/** a device with no status on the broker: silent (seen before), not built, or not reported yet */
function noReport(d: ResolvedDevice, inp: SummaryInput, base: { id: string; site: string }, now: number): DeviceState {
  const builtHash = inp.built?.get(d.id);
  const seen = inp.lastSeen?.get(d.id);
  if (seen) {
    const text = `silent: no status on the broker (a status expires ${ago(inp.expirySec)} after it was sent); last seen ${seen}; check power and network, ${REFUSED_HINT}`;
    return { ...base, bucket: 'silent', ...withinTolerance(d, (now - Date.parse(seen)) / 1000, text, inp), lastReport: seen };
  }
  if (inp.built && !builtHash) return { ...base, bucket: 'neverSeen', attention: 'not in the last build (build it, then flash or provision it)' };
  return {
    ...base,
    bucket: 'neverSeen',
    attention: `no status yet: a flashed or provisioned device reports from its first boot on; check power and network, that the broker has its user (edgeforge status broker-config), ${REFUSED_HINT}`,
  };
}

export function classify(d: ResolvedDevice, r: StatusReport | undefined, inp: SummaryInput): DeviceState {
  const now = inp.now.getTime();
  const base = { id: d.id, site: d.siteId };
  const builtHash = inp.built?.get(d.id);
  if (!r) return noReport(d, inp, base, now);
  const arrival = inp.arrivals.get(d.id) ?? { expiry: 'none' };
  const st: DeviceState = { ...base, bucket: 'upToDate', lastReport: r.time, receivedAt: arrival.at && iso(arrival.at), report: r };
  if (arrival.expiry === 'none') {
    // the broker keeps it for good and cannot say when it came: nothing current can be read from it
    st.bucket = 'silent';
    st.attention = `its status on the broker has no message expiry, so when it arrived is unknown and it is not counted as current (the reporter always sets one: another client used its credential — MQTT 3.1.1, v5 without expiry, or a will; device time ${r.time}); its next report replaces it — if none comes: check power and network, ${REFUSED_HINT}`;
    return st;
  }
  const deviceAge = (now - Date.parse(r.time)) / 1000;
  // 'longer' (more expiry left than the fleet's): the broker gives no age, only that it has not expired
  const age = arrival.at ? (now - arrival.at.getTime()) / 1000 : Math.max(0, deviceAge);
  const problems: string[] = [];
  const skew = arrival.at ? deviceAge - age : Math.min(0, deviceAge);
  if (skew < -inp.periodSec) problems.push(`its clock is ${ago(-skew)} ahead (report time ${r.time}${st.receivedAt ? `, received ${st.receivedAt}` : ''})`);
  else if (skew > inp.periodSec) problems.push(`its clock is ${ago(skew)} behind (report time ${r.time}, received ${st.receivedAt})`);

  if (age > inp.staleSec) {
    st.bucket = 'silent';
    const text = `silent for ${ago(age)} (last status ${arrival.at ? `received ${st.receivedAt}` : `sent ${r.time}`}; first boot ${r.firstboot.state}${r.lastError ? `; last error: ${r.lastError}` : ''}); check power and network, ${REFUSED_HINT}${problems.length ? `; ${problems.join('; ')}` : ''}`;
    Object.assign(st, withinTolerance(d, age, text, inp));
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
    problems.unshift(
      `first boot failed at step ${fb.step}${fb.retry === 'permanent' ? ' (permanent: not retried; fix the cause, then edgeforge-firstboot retry)' : ''}: ${fb.error || r.lastError || '(no message)'}`,
    );
  } else if (r.dataVolume.state === 'locked') {
    st.bucket = 'locked';
    problems.unshift(
      `data volume locked${r.dataVolume.since ? ` since ${r.dataVolume.since}` : ''}: the site's tang server (or TPM policy) does not unlock it; K3s waits (${r.dataVolume.detail || 'no detail'})`,
    );
  } else if (r.firstboot.state === 'running' || r.firstboot.state === 'pending') {
    st.bucket = 'firstBoot';
    const since = Date.parse(r.firstboot.at);
    const running = Number.isFinite(since) ? (now - since) / 1000 : 0;
    const stuck = inp.firstBootStuckSec ?? 3600;
    if (running > stuck) problems.unshift(`first boot at step ${r.firstboot.step} for ${ago(running)}`);
    else st.note = `first boot at step ${r.firstboot.step}`;
  } else {
    const behind: string[] = [];
    if (builtHash && r.applied.bundleSha256 !== builtHash)
      behind.push(`applied bundle ${r.applied.bundleSha256.slice(0, 12) || 'none'} is not the last build's ${builtHash.slice(0, 12)} (provision or reflash it)`);
    const want = deviceK3sVersion(d, { k3s: inp.k3s });
    if (r.k3s.version !== 'unknown' && r.k3s.version !== want) behind.push(`runs K3s ${r.k3s.version}, the inventory gives its ${ringOf(d)} ring ${want}`);
    if (r.gitops.ready === 'false') behind.push(`Flux is not Ready (applied revision ${r.gitops.revision})`);
    behind.push(...osBehind(d, r, inp));
    if (behind.length) {
      st.bucket = 'behind';
      problems.unshift(...behind);
    }
  }
  const rolled = inp.os && isAbDevice({ os: inp.os }, d) ? osRollback(r, deviceOsVersion(inp.os, d)) : undefined;
  if (rolled) problems.push(rolled);
  const notAfter = Date.parse(r.k3s.certNotAfter);
  if (Number.isFinite(notAfter) && (notAfter - now) / 1000 < (inp.certWarnSec ?? 30 * 86400)) {
    problems.push(notAfter < now ? `K3s serving certificate expired ${r.k3s.certNotAfter}` : `K3s serving certificate expires ${r.k3s.certNotAfter} (in ${ago((notAfter - now) / 1000)})`);
  }
  if (problems.length) st.attention = problems.join('; ');
  return st;
}

/** An A/B device on another release than its ring's (a trial in progress is a note, not a problem). */
function osBehind(d: ResolvedDevice, r: StatusReport, inp: SummaryInput): string[] {
  if (!inp.os || !r.os || !isAbDevice({ os: inp.os }, d)) return [];
  const want = deviceOsVersion(inp.os, d);
  if (!r.os.version || r.os.version === want || r.os.trial.version === want) return [];
  return [
    `runs OS ${r.os.version} (slot ${r.os.slot || '?'}), the inventory gives its ${ringOf(d)} ring ${want}${r.os.rollback.version === want ? '' : ' (it installs it in its next maintenance window)'}`,
  ];
}

/**
 * The ring's release came back to the old slot: the device says why; twice in a row and it waits for a person.
 * (A rollback of a release the ring has left since is history, not a problem.)
 */
export function osRollback(r: StatusReport, want: string): string | undefined {
  const rb = r.os?.rollback;
  if (!rb?.version || rb.count < 1 || rb.version !== want || r.os!.version === want) return undefined;
  const held = rb.count >= 2;
  return `OS ${rb.version} rolled back ${rb.count} time(s) in a row (last ${rb.at}): ${rb.reason}; it runs ${r.os!.version || '?'} in slot ${r.os!.slot || '?'}${held ? ' — held back: fix the cause, then `sudo edgeforge-os-update retry` on the device (docs/os-updates.md)' : '; it tries again in its next window'}`;
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
  const inactive = [...(inp.inactiveReports?.values() ?? [])].map(({ device: d, ...x }) => {
    const n = inactiveNote(d, x, inp.now, inp.expirySec);
    const a = x.arrival;
    return { id: d.id, site: d.siteId, status: d.status, lastReport: x.report?.time, receivedAt: a.at && iso(a.at), expiry: a.expiry, reason: n.reason, needsPerson: n.needsPerson };
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
