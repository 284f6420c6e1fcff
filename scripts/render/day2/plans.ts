// The upgrade Plans of one site: the pinned system-upgrade-controller's Plan objects holding
// the site's K3s at its ring's version, run only inside the site's maintenance window.
//   single-node cluster: one Plan for the server, no cordon and no drain (there is no other node to move
//     the pods to: draining would only stop them for the length of the upgrade and then some)
//   multi-node site: the server first (cordoned, not drained: it is where the agents' pods go), then the
//     agents one at a time (concurrency 1), each drained; their prepare step waits until the server Plan is done
import type { Fleet, ResolvedSite } from '../../inventory/fleet.ts';
import { runsFlux, upgradesPath } from '../flux/sync.ts';
import { k3sUpgradeRepository } from './upgrade-images.ts';
import { ringOf, ringVersion } from './rings.ts';
import { UPGRADE_NAMESPACE, UPGRADE_SERVICE_ACCOUNT } from './controller.ts';

export const SERVER_PLAN = 'k3s-server';
export const AGENT_PLAN = 'k3s-agent';
const CONTROL_PLANE = 'node-role.kubernetes.io/control-plane';
/**
 * How long an agent's drain may take: 10 minutes, written as the controller's DrainSpec decodes it — a Go
 * time.Duration, i.e. JSON nanoseconds (a string such as "10m" fails to decode and the Plan never runs).
 */
export const DRAIN_TIMEOUT_NS = 10 * 60 * 1_000_000_000;

export { upgradesPath };

/** The Plan's window: the shape of the controller's TimeWindowSpec. */
export function planWindow(s: Pick<ResolvedSite, 'window'>): Record<string, unknown> {
  return { days: [...s.window.days], startTime: s.window.start, endTime: s.window.end, timeZone: s.window.timeZone };
}

export function sitePlans(s: ResolvedSite, fleet: Pick<Fleet, 'k3s'>): Record<string, unknown>[] {
  const active = s.devices.filter((d) => d.status === 'active');
  const multi = active.some((d) => d.cluster.kind === 'multi-node-server');
  const ring = ringOf(s);
  const version = ringVersion(fleet, ring);
  const image = k3sUpgradeRepository(fleet);
  const meta = (name: string) => ({ name, namespace: UPGRADE_NAMESPACE, labels: { 'edgeforge.io/ring': ring, 'edgeforge.io/site': `${s.region}.${s.name}` } });
  const common = { serviceAccountName: UPGRADE_SERVICE_ACCOUNT, version, window: planWindow(s), concurrency: 1 };
  const server = {
    apiVersion: 'upgrade.cattle.io/v1',
    kind: 'Plan',
    metadata: meta(SERVER_PLAN),
    spec: {
      ...common,
      nodeSelector: { matchExpressions: [{ key: CONTROL_PLANE, operator: 'In', values: ['true'] }] },
      tolerations: [
        { key: 'CriticalAddonsOnly', operator: 'Exists' },
        { key: CONTROL_PLANE, operator: 'Exists', effect: 'NoSchedule' },
      ],
      // single node: nothing to drain to; multi-node: keep new pods off the server while its K3s restarts
      cordon: multi,
      upgrade: { image },
    },
  };
  if (!multi) return [server];
  const agent = {
    apiVersion: 'upgrade.cattle.io/v1',
    kind: 'Plan',
    metadata: meta(AGENT_PLAN),
    spec: {
      ...common,
      nodeSelector: { matchExpressions: [{ key: CONTROL_PLANE, operator: 'DoesNotExist' }] },
      // the k3s-upgrade image's prepare step: wait until the server Plan has finished on every server
      prepare: { image, args: ['prepare', SERVER_PLAN] },
      drain: { force: true, ignoreDaemonSets: true, deleteEmptydirData: true, skipWaitForDeleteTimeout: 60, timeout: DRAIN_TIMEOUT_NS },
      upgrade: { image },
    },
  };
  return [server, agent];
}

/** Sites whose server runs Flux (and so the controller): the ones that get Plans. */
export function sitesWithPlans(fleet: Pick<Fleet, 'sites'>): ResolvedSite[] {
  return fleet.sites.filter((s) => s.devices.some(runsFlux));
}
