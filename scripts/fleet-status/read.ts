// `edgeforge status` without the CLI: collect the broker's retained statuses, read each one (ignoring and
// counting the bad ones), join them with the inventory and the last build's manifest, summarize.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { deviceTopic, type StatusConfig } from '../inventory/fleet-status.ts';
import { clearRetained, collectStatuses } from './collect.ts';
import { arrivalOf, type Arrival } from './arrival.ts';
import { readStatus, type StatusReport } from './report.ts';
import { summarize, type FleetStatus, type InactiveReport } from './summary.ts';
import { UserError } from '../util/errors.ts';

export interface ReadOptions {
  inventoryFile: string;
  /** the build output holding manifest.json (optional: without it "behind" is not judged on the bundle) */
  outDir: string;
  user?: string;
  password: string;
  site?: string;
  staleSec?: number;
  now: Date;
  /** a JSON file of device -> last time seen, read and updated (remembers devices whose status expired) */
  seenFile?: string;
  timeoutMs?: number;
  /** read from this broker URL instead of status.broker (a tunnel, another address of the same broker) */
  brokerUrl?: string;
  /** after reading, clear the retained statuses of devices that left the fleet (empty retained messages) */
  clearDeparted?: boolean;
}

export function requireStatusConfig(fleet: Fleet): StatusConfig {
  const cfg = fleet.status;
  if (!cfg) throw new UserError(`${fleet.file}: this fleet has no \`status:\` block, so devices do not report; add status: {broker: mqtts://HOST:8883, caFile: broker-ca.pem} (docs/status.md)`);
  return cfg;
}

export async function readCa(inventoryFile: string, cfg: StatusConfig): Promise<string> {
  const file = path.resolve(path.dirname(inventoryFile), cfg.caFile);
  const pem = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UserError(`status.caFile ${cfg.caFile} (${file}): ${e.code ?? e.message}; it must hold the PEM CA certificate of the broker's TLS certificate`);
  });
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw new UserError(`status.caFile ${cfg.caFile} (${file}) holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  return pem;
}

/** device id -> bundle hash (sha256 of its bundle/SHA256SUMS) from OUT/manifest.json, or undefined without one. */
export async function builtBundles(outDir: string): Promise<Map<string, string> | undefined> {
  let m: { devices?: { id: string; artifacts: { path: string; sha256: string }[] }[] };
  try {
    m = JSON.parse(await fs.readFile(path.join(outDir, 'manifest.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const out = new Map<string, string>();
  for (const d of m.devices ?? []) {
    const sums = d.artifacts.find((a) => a.path.endsWith(`/${d.id}/bundle/SHA256SUMS`));
    if (sums) out.set(d.id, sums.sha256);
  }
  return out;
}

/** the devices' last-seen times kept in `seenFile`, updated with what the broker dated now */
async function updateLastSeen(seenFile: string, arrivals: Map<string, Arrival>): Promise<Map<string, string>> {
  const prev = await fs.readFile(seenFile, 'utf8').then(
    (t) => JSON.parse(t) as Record<string, string>,
    () => ({}) as Record<string, string>,
  );
  const lastSeen = new Map(Object.entries(prev));
  // when the broker got it; a status it cannot date (no expiry) says nothing about when the device was heard
  for (const [id, a] of arrivals) if (a.at) lastSeen.set(id, a.at.toISOString().replace(/\.\d{3}Z$/, 'Z'));
  const { writeFileAtomic } = await import('../util/atomic.ts');
  await writeFileAtomic(seenFile, JSON.stringify(Object.fromEntries([...lastSeen].sort()), null, 1) + '\n');
  return lastSeen;
}

export async function readFleetStatus(
  fleet: Fleet,
  opts: ReadOptions,
): Promise<FleetStatus & { broker: string; read: { retained: number; live: number; ms: number; attempts: number }; manifest: boolean; cleared: string[] }> {
  const cfg = requireStatusConfig(fleet);
  let devices: ResolvedDevice[] = fleet.active;
  if (opts.site) {
    devices = devices.filter((d) => d.siteId === opts.site || d.site === opts.site);
    if (!devices.length) throw new UserError(`--site ${opts.site}: no active device in that site (sites: ${fleet.sites.map((s) => s.id).join(', ')})`);
  }
  const [ca, built] = await Promise.all([readCa(opts.inventoryFile, cfg), builtBundles(opts.outDir)]);
  const auth = { username: opts.user ?? cfg.adminUser, password: opts.password, ca };
  const got = await collectStatuses(cfg, auth, { timeoutMs: opts.timeoutMs, url: opts.brokerUrl }).catch((err) => {
    throw new UserError((err as Error).message, 1);
  });
  const byTopic = new Map(fleet.active.map((d) => [deviceTopic(cfg, d), d]));
  const inactiveByTopic = new Map(fleet.devices.filter((d) => d.status !== 'active').map((d) => [deviceTopic(cfg, d), d]));
  const inactiveReports = new Map<string, InactiveReport>();
  const reports = new Map<string, StatusReport>();
  const arrivals = new Map<string, Arrival>();
  const ignored: FleetStatus['ignored'] = { oversized: 0, malformed: 0, 'wrong-device': 0, 'unknown-device': 0 };
  const inSite = (d: ResolvedDevice) => !opts.site || d.siteId === opts.site || d.site === opts.site;
  for (const [topic, m] of got.messages) {
    const d = byTopic.get(topic);
    if (!d) {
      const gone = inactiveByTopic.get(topic);
      if (!gone) {
        ignored['unknown-device']++;
        continue;
      }
      // whatever it holds, a message there after the revoke means the broker still takes the credential: it is
      // judged with the departed devices (an unreadable one too), not merely counted
      const r = readStatus(m.payload, gone.id);
      if (inSite(gone)) inactiveReports.set(gone.id, { device: gone, ...(r.ok ? { report: r.report } : { unreadable: r.why }), arrival: arrivalOf(m, cfg.expirySec) });
      else if (!r.ok) ignored[r.why]++;
      continue;
    }
    const r = readStatus(m.payload, d.id);
    if (r.ok) {
      reports.set(d.id, r.report);
      arrivals.set(d.id, arrivalOf(m, cfg.expirySec));
    } else ignored[r.why]++;
  }
  const lastSeen = opts.seenFile ? await updateLastSeen(opts.seenFile, arrivals) : undefined;
  const summary = summarize({
    devices,
    reports,
    arrivals,
    ignored,
    built,
    k3s: fleet.k3s,
    ...(fleet.os ? { os: fleet.os } : {}),
    now: opts.now,
    periodSec: cfg.periodSec,
    staleSec: opts.staleSec ?? Math.round(cfg.periodSec * 1.5),
    offlineToleranceSec: new Map(fleet.sites.map((s) => [s.id, s.policy.offlineToleranceSec])),
    expirySec: cfg.expirySec,
    lastSeen,
    inactiveReports,
  });
  const cleared: string[] = [];
  if (opts.clearDeparted && inactiveReports.size) {
    const gone = [...inactiveReports.values()].map((x) => x.device);
    await clearRetained(
      cfg,
      auth,
      gone.map((d) => deviceTopic(cfg, d)),
      { url: opts.brokerUrl },
    ).catch((err) => {
      throw new UserError((err as Error).message, 1);
    });
    cleared.push(...gone.map((d) => d.id));
  }
  return { ...summary, broker: opts.brokerUrl ?? cfg.broker.url, read: { retained: got.retained, live: got.live, ms: Math.round(got.ms), attempts: got.attempts }, manifest: Boolean(built), cleared };
}
