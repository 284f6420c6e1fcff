// Section "GitOps: pull only": the repository's shape with this fleet's names (every region, the first few sites
// and devices) and how often the devices poll; the traffic itself is in section "Central load".
import type { Fleet } from '../../inventory/fleet.ts';
import type { PlanData } from './model.ts';
import { runsFlux } from '../flux/sync.ts';
import { GIT_TRANSPORT, OCI_TRANSPORT } from './load.ts';
import { sourceWords } from './transport.ts';

/** The repository's shape with this fleet's names: every region, and the sites and devices of the first few. */
export function gitopsLayout(fleet: Fleet): string[] {
  const SHOWN = 3;
  const layout = [
    'infrastructure/base/         # shared controllers and policies',
    'infrastructure/system-upgrade/   # the K3s upgrade controller',
    'apps/base/, apps/stable/, apps/canary/   # workloads and the two rollout rings',
    "upgrades/<region>/<site>/    # each site's K3s upgrade Plans",
    'overlays/',
  ];
  for (const r of fleet.regions) layout.push(`  regions/${r.name}/          # region overlay: infrastructure + region patches`);
  const sites = fleet.sites;
  for (const s of sites.slice(0, SHOWN)) layout.push(`  sites/${s.region}/${s.name}/   # its region + the ${s.canary ? 'canary ring: changes land here first' : 'stable ring'}`);
  if (sites.length > SHOWN) layout.push(`  … ${sites.length - SHOWN} more site overlay(s)`);
  layout.push('clusters/');
  const withFlux = sites.filter((s) => s.devices.some(runsFlux));
  for (const s of withFlux.slice(0, SHOWN)) {
    const ds = s.devices.filter(runsFlux);
    layout.push(`  ${s.region}/${s.name}/`);
    for (const d of ds.slice(0, 2)) layout.push(`    ${d.id}/        # this device's Flux entry point (its site overlay + its own patches)`);
    if (ds.length > 2) layout.push(`    … ${ds.length - 2} more device(s)`);
  }
  if (withFlux.length > SHOWN) layout.push(`  … ${withFlux.length - SHOWN} more site(s), ${withFlux.slice(SHOWN).reduce((a, s) => a + s.devices.filter(runsFlux).length, 0)} more device(s)`);
  // align the comments
  const width = Math.max(...layout.map((l) => (l.includes('#') ? l.slice(0, l.indexOf('#')).trimEnd().length : 0))) + 2;
  return layout.map((l) => {
    const at = l.indexOf('#');
    return at > 0 ? l.slice(0, at).trimEnd().padEnd(width) + l.slice(at) : l;
  });
}

export function gitopsSection(fleet: Fleet, p: PlanData): string[] {
  const g = p.gitops;
  const w = sourceWords(fleet);
  const git = p.load.find((l) => l.transport === GIT_TRANSPORT.name)!.metrics;
  const oci = p.load.find((l) => l.transport === OCI_TRANSPORT.name)!.metrics;
  const source = w.oci
    ? `Repository \`${g.url}\`, branch \`${g.branch}\`: the source of truth, which CI publishes after each merge (\`edgeforge publish\`) as one OCI artifact per site to the registry \`${w.host}\` (TLS, its CA pinned on every device). Each of the ${g.fluxDevices} Flux device(s) runs ${g.controllers.map((c) => `\`${c}\``).join(', ') || 'Flux'}, pulls its site's artifact with its own pull credential, and reconciles \`clusters/<region>/<site>/<device>\` from it.`
    : `Repository \`${g.url}\`, branch \`${g.branch}\`, host key pinned in the inventory. Each of the ${g.fluxDevices} Flux device(s) runs ${g.controllers.map((c) => `\`${c}\``).join(', ') || 'Flux'}, and reconciles \`clusters/<region>/<site>/<device>\`.`;
  const polls = w.oci
    ? `Polling every ${g.interval} plus a per-device offset: ${g.pollsPerDay.toLocaleString('en-US')} tag checks a day at the registry from the ${g.fluxDevices} Flux device(s). A device downloads only when its site's artifact changed: ${oci.perCommitDevice.value === 'not measured' ? 'its size is not measured here' : `${oci.perCommitDevice.value} for the largest site`} (section "Central load").`
    : `Polling every ${g.interval} plus a per-device offset: ${g.pollsPerDay.toLocaleString('en-US')} polls a day from the ${g.fluxDevices} Flux device(s)${g.mirroredPollsPerDay ? `, ${g.mirroredPollsPerDay.toLocaleString('en-US')} of them to site mirrors` : ''}. Each new commit is a full shallow clone for every device: ${git.perCommitDevice.value} per device (section "Central load").`;
  return [source, '', '```text', ...g.layout, '```', '', polls, ''];
}
