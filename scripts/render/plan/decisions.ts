// Decisions the device count drives, each with its threshold stated and why: computed from the fleet, so a
// 14-device fleet and a 2,000-device one get different advice from the same code.
import type { Fleet } from '../../inventory/fleet.ts';
import type { Decision, SitePlan } from './model.ts';
import { runsFlux } from '../flux/sync.ts';
import { counted, num } from './md.ts';
import { usesOci } from '../oci/format.ts';

/** A site with at least this many Flux devices gets a local source cache: a read-only Git mirror (gitops.mirrors), or an OCI site cache. */
export const GIT_MIRROR_AT = 20;
/** A site with at least this many devices gets a registry pull-through cache (registryMirror). */
export const REGISTRY_CACHE_AT = 10;
/** The canary ring should hold between these shares of the devices. */
export const CANARY_MIN_PERCENT = 1;
export const CANARY_MAX_PERCENT = 20;
/**
 * Reports per second a single broker is planned for before a second one (or one per region) is: a fraction of
 * what was measured (BROKER_MEASURED), which had the clients on the broker's own machine — no WAN, no slow
 * device TLS handshakes.
 */
export const BROKER_REPORTS_PER_SEC = 50;
/** The benchmark's set-up as BENCHMARKS.md records it (its one home; test/plan/decisions.test.ts reads it there). */
export const BROKER_MEASURED = {
  devices: 2000,
  seconds: 4.8,
  where:
    'BENCHMARKS.md, "Fleet status" (`npm run bench:status`, 2026-12-02, quiet 2-core machine): Mosquitto 2.0.11 and the clients (mqtt.js, 64 at a time, each a new TLS connection) on the same machine',
};
const measuredPerSec = BROKER_MEASURED.devices / BROKER_MEASURED.seconds;

export function decisions(fleet: Fleet, sites: SitePlan[]): Decision[] {
  const out: Decision[] = [];
  const oci = usesOci(fleet);
  const mirrors: Record<string, unknown> = (oci ? fleet.gitops.oci?.siteCaches : fleet.gitops.mirrors) ?? {};
  const bigGit = fleet.sites.filter((s) => s.devices.filter(runsFlux).length >= GIT_MIRROR_AT);
  const gitMissing = bigGit.filter((s) => !mirrors[s.id]).map((s) => s.id);
  out.push({
    decision: oci ? 'a cache of the OCI artifacts at the site' : 'a read-only Git mirror at the site',
    threshold: `≥ ${GIT_MIRROR_AT} Flux devices at a site`,
    why: oci
      ? "each device fetches its site's artifact when it changes: a site cache turns the site's N fetches over its WAN into about one (tag checks still reach the central registry)"
      : "every device makes a full shallow clone of each new commit and polls every interval: a mirror turns the site's N clones and polls into one incremental fetch from the central host",
    here: `${bigGit.length} of ${fleet.sites.length} site(s) qualify; ${bigGit.length - gitMissing.length} have one`,
    action: gitMissing.length ? `add \`${oci ? 'gitops.oci.siteCaches' : 'gitops.mirrors'}\` for ${counted(gitMissing, 'site')}` : 'nothing',
    needsPerson: gitMissing.length > 0,
  });
  const bigReg = sites.filter((s) => s.devices >= REGISTRY_CACHE_AT);
  const regMissing = bigReg.filter((s) => !s.registryMirror).map((s) => s.id);
  out.push({
    decision: 'a registry pull-through cache at the site',
    threshold: `≥ ${REGISTRY_CACHE_AT} devices at a site`,
    why: "without it every device pulls every image (and each K3s upgrade image) over the site's uplink itself",
    here: `${bigReg.length} of ${sites.length} site(s) qualify; ${bigReg.length - regMissing.length} have one`,
    action: regMissing.length ? `add \`registryMirror\` for ${counted(regMissing, 'site')}` : 'nothing',
    needsPerson: regMissing.length > 0,
  });
  const active = fleet.active.length;
  const canaryDevices = fleet.active.filter((d) => d.canary).length;
  const share = active ? (100 * canaryDevices) / active : 0;
  const canarySites = fleet.sites.filter((s) => s.canary);
  // with fewer than 100 / MAX sites, one canary site is already more than MAX percent: one is right then
  const fewSites = fleet.sites.length < 100 / CANARY_MAX_PERCENT && canarySites.length === 1;
  const ringOk = fleet.sites.length < 2 || fewSites || (share >= CANARY_MIN_PERCENT && share <= CANARY_MAX_PERCENT);
  out.push({
    decision: "the canary ring's size",
    threshold: `${CANARY_MIN_PERCENT}–${CANARY_MAX_PERCENT}% of the devices (one site when the fleet has fewer than ${100 / CANARY_MAX_PERCENT})`,
    why: 'too small and a fault is not seen before promotion; too large and a bad release hits a large part of the fleet',
    here: `${canarySites.length} canary site(s), ${canaryDevices} of ${active} devices (${share.toFixed(1)}%; ring from ${canarySites[0]?.canarySource ?? 'the inventory'})`,
    action: ringOk ? 'nothing' : share < CANARY_MIN_PERCENT ? 'mark more sites `canary: true` (or raise `defaults.policy.canaryPercent`)' : 'mark fewer sites `canary: true`',
    needsPerson: !ringOk,
  });
  const st = fleet.status;
  if (st) {
    const perSec = active / st.periodSec;
    out.push({
      decision: 'status broker sizing',
      threshold: `${BROKER_REPORTS_PER_SEC} reports/s on one broker (each report is one TLS connection: the reporter is a oneshot)`,
      why: `edgeforge's planning line, ${Math.round((100 * BROKER_REPORTS_PER_SEC) / measuredPerSec)}% of a measured rate: ${num(BROKER_MEASURED.devices)} devices published with their own credentials over TLS in ${BROKER_MEASURED.seconds} s (≈ ${Math.round(measuredPerSec)}/s; ${BROKER_MEASURED.where}). Above it, lengthen status.period or split the broker (one status block per fleet today)`,
      here: `${num(active)} devices every ${st.period}: ${perSec.toFixed(2)} reports/s, ${num(active)} retained statuses`,
      action: perSec > BROKER_REPORTS_PER_SEC ? 'lengthen `status.period` or split the broker' : 'one broker',
      needsPerson: perSec > BROKER_REPORTS_PER_SEC,
    });
  }
  return out;
}
