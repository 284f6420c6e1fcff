// Sections "Offline operation", "Sync conflicts" and "When a device is stolen", written for the operator on
// call: what wins, what is overwritten, what happens to data made while offline, and per site what a reboot
// does while its tang server cannot be reached — with the option to change it where the hardware allows.
import type { Fleet, ResolvedSite } from '../../inventory/fleet.ts';
import type { SitePlan, TangOutage } from './model.ts';
import { fluxStorageMode } from '../flux/components.ts';
import { DEVICE_KUSTOMIZATION, FLUX_NS, fluxSyncObjects, runsFlux, SYNC_TUNING, UPGRADES_KUSTOMIZATION } from '../flux/sync.ts';
import { counted, groupBy, names } from './md.ts';

/** Per site: a reboot during a tang outage, and the alternative its devices' hardware allows. */
export function tangOutage(s: ResolvedSite, plan: SitePlan): TangOutage {
  const active = s.devices.filter((d) => d.status === 'active');
  const withTpm = active.filter((d) => d.profile.tpm2).length;
  const first = active[0];
  const e = first?.encryption;
  if (!e || e.mode === 'none')
    return {
      site: s.id,
      reboot: 'nothing to unlock: the device starts its workloads (and keeps its secrets in clear on disk)',
      option:
        withTpm === active.length && active.length
          ? 'every device has a TPM: `encryption: {mode: tpm2}` encrypts without any server'
          : 'add a tang server (mode tang), or TPM2 where the board has one',
    };
  if (!plan.tangRequired)
    return {
      site: s.id,
      reboot: 'the data volume unlocks from the TPM alone: workloads start without the network',
      option: 'already independent of tang (a device carried off keeps unlocking: the TPM binds the disk to the board, not to the site)',
    };
  const reboot =
    'the device boots, answers SSH and keeps its firewall, but the data volume stays locked: K3s and every workload wait, retrying the unlock with backoff until tang answers (nothing is lost; recovery by hand: `edgeforge keys recover ID`)';
  let option: string;
  if (withTpm === active.length) option = 'every device has a TPM: `encryption: {mode: tang+tpm2, threshold: 1}` unlocks from the TPM alone during an outage (but so would a stolen device)';
  else if (withTpm)
    option = `${withTpm} of ${active.length} devices have a TPM (tang+tpm2 with threshold 1 for those); for the rest, a second tang server with \`threshold: 1\` removes the single point`;
  else
    option =
      e.tang.length > 1 && e.threshold < e.tang.length
        ? `no TPM on these boards; ${e.threshold} of ${e.tang.length} tang servers suffice already`
        : 'no TPM on these boards: a second tang server with `threshold: 1` removes the single point of failure';
  return { site: s.id, reboot, option };
}

export function offlineLines(fleet: Fleet, sites: SitePlan[]): string[] {
  const storage = fluxStorageMode(fleet) === 'pvc' ? 'a local-path PersistentVolume' : 'a hostPath on the K3s data directory';
  const agents = fleet.active.some((d) => d.cluster.kind === 'multi-node-agent');
  const mirrors = sites.filter((s) => s.registryMirror).map((s) => s.id);
  return [
    `**A link down for hours**: nothing queues. Each device keeps applying the last revision it fetched (kept on ${storage}, so a reboot re-applies it too) and polls every ${fleet.gitops.interval} plus its offset; missed polls are just missed.${agents ? ' Agents keep running the pods their server scheduled; while the server is unreachable nothing new is scheduled onto them.' : ''}`,
    '**Back after days**: the next poll fetches only the newest revision of the branch and applies it in one reconcile; intermediate commits are never replayed, and what Git removed meanwhile is pruned. A K3s upgrade Plan it missed runs in its next maintenance window.',
    "**Data made while offline**: stays on the device. GitOps carries desired state down, never data up: what workloads write to their volumes (local-path, on the data volume where it is encrypted) is theirs to ship when the link is back; Git never merges or overwrites it. A status report that cannot be sent is not queued: the next one states the device's current state.",
    mirrors.length
      ? `**Images** come from the site registry mirror at ${counted(mirrors, 'site')}, so those pull each image over the WAN once; the other ${sites.length - mirrors.length} site(s) pull from the public registries, and a pod whose image is not cached yet waits for the link.`
      : '**Images**: no site has a registry mirror; a pod whose image is not cached yet waits for the link.',
  ];
}

export function tangLines(outages: TangOutage[]): string[] {
  return groupBy(outages, (o) => `${o.reboot}\0${o.option}`).map(([, os]) => `${names(os.map((o) => o.site))}: ${os[0].reboot}. Option: ${os[0].option}.`);
}

export function conflictLines(fleet: Fleet, sites: SitePlan[]): string[] {
  const canary = sites.filter((s) => s.canary).map((s) => s.id);
  return [
    `**What wins: Git.** Every object Flux applied is re-applied from the last fetched revision every ${SYNC_TUNING.deviceInterval} (Kustomization \`device\`, no network needed): fields Git sets are set back, and an object Git no longer has is deleted (\`prune: true\`).`,
    '**What is overwritten**: a change made on the device (`kubectl edit`, `patch`, `scale`, a Helm upgrade by hand) to an object Flux applies, at the next reconcile. **What is not**: objects Flux never applied (created by hand or by a workload), Secrets and volumes a workload wrote, anything under `/var/lib` outside K3s. To keep a local fix, put it in Git first.',
    '**Two people, one change**: two commits to the same file meet in a Git merge conflict on a workstation at review time; a device only ever sees one revision of the branch, never a conflict.',
    `**Staged rollouts**: changes go to \`apps/canary/\` first (${canary.length ? counted(canary, 'canary site') : 'no canary site yet: set `canary: true` on a site'}), then into \`apps/base/\` for the stable ring; K3s versions follow the same rings (Day 2).`,
    suspendLine(fleet),
  ];
}

/** What `suspend: true` in sync-patch.yaml holds, and what it does not: read from the device's rendered sync objects. */
function suspendLine(fleet: Fleet): string {
  const d = fleet.active.find(runsFlux);
  if (!d) return '**Holding a device still**: no device runs Flux.';
  const others = fluxSyncObjects(d, fleet)
    .filter((o) => o.kind === 'Kustomization')
    .map((o) => o as { metadata: { name: string }; spec: { path: string } })
    .filter((o) => o.metadata.name !== DEVICE_KUSTOMIZATION);
  const what = (o: (typeof others)[number]) => {
    if (o.metadata.name === FLUX_NS) return `\`${FLUX_NS}\` (Flux's own upgrades and the device's sync settings)`;
    if (o.metadata.name === UPGRADES_KUSTOMIZATION) return `\`${o.metadata.name}\` (\`${o.spec.path}\`: its site's K3s upgrade Plans — a pending K3s upgrade still runs in the next window)`;
    return `\`${o.metadata.name}\` (\`${o.spec.path}\`)`;
  };
  return `**Holding a device still (\`suspend\`)**: \`suspend: true\` in a device's \`flux-system/sync-patch.yaml\` suspends its Kustomization \`${DEVICE_KUSTOMIZATION}\` only: its workloads stop changing (no apply, no prune, no drift correction) while it keeps fetching. It does **not** stop its other Kustomizations: ${others.map(what).join(', ')}. There is no site switch: set it in each device's file of the site (\`sed -i 's/suspend: false/suspend: true/' clusters/<region>/<site>/*/flux-system/sync-patch.yaml\`). A site's K3s changes only when its ring's version changes in the inventory: to hold K3s, do not set \`k3s.canaryVersion\` (canary sites) or run \`rollout promote\` (stable sites).`;
}
