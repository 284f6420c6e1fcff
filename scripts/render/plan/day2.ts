// The plan's "Day 2" section: rings and their K3s versions, the maintenance window of every site
// and where it came from, the upgrade path (what an airgap operator stages before promoting), certificate
// renewal and what else expires, with the real YAML of one Plan and the commands. Every line is derived from
// the inventory and the rendered Plans.
import type { Fleet } from '../../inventory/fleet.ts';
import { INDUSTRY_WINDOWS, industryWindowKey, windowText } from '../../inventory/windows.ts';
import { K3S_CERT_SOURCES, K3S_LINE_EOL, k3sRenewalDays, parseK3sVersion } from '../../inventory/k3s-versions.ts';
import { joinWindowDays } from '../../keys/join-token.ts';
import type { Expiry } from '../../conformance/expiry.ts';
import { fleetAirgapReleases, ringOf, ringVersion, ringVersions, rolloutInProgress } from '../day2/rings.ts';
import { sitePlans, sitesWithPlans, upgradesPath } from '../day2/plans.ts';
import { controllerVersion, qualifiedImage, upgradeImages } from '../day2/upgrade-images.ts';
import { CONTROLLER_MEMORY_LIMIT_MIB } from '../day2/controller.ts';
import { RENEW_DAYS, windowOnCalendar } from '../day2/renewal.ts';
import { toYaml } from '../yaml.ts';
import { groupBy, names } from './md.ts';
import { osUpdatesMarkdown, osUpdatesPlan } from './os-updates.ts';

/** Sites with the same window (days and hours), source and ring: one row, their time zones listed (per site: the appendix). */
export function windowRows(fleet: Fleet): { window: string; zones: string[]; source: string; ring: string; sites: string[] }[] {
  return groupBy(fleet.sites, (s) => `${windowText({ ...s.window, timeZone: '' }).trim()}\0${s.window.source}\0${ringOf(s)}`).map(([, ss]) => ({
    window: windowText({ ...ss[0].window, timeZone: '' }).trim(),
    zones: [...new Set(ss.map((s) => s.window.timeZone))],
    source: ss[0].window.source,
    ring: ringOf(ss[0]),
    sites: ss.map((s) => s.id),
  }));
}

export interface Day2Plan {
  rings: { ring: string; version: string; sites: string[]; devices: number }[];
  rolloutInProgress: boolean;
  windows: { site: string; ring: string; window: string; source: string }[];
  /** what the fleet's industry decides, derived: the sites that use its default window */
  industry: { key: string; window: string; why: string; sitesUsingIt: string[] };
  images: { pull: string; role: string; pinned: boolean }[];
  stage: string[];
  renewal: string[];
  expires: string[];
  examplePlan: { path: string; yaml: string } | undefined;
  /** airgap installs: the K3s release each ring's new devices install, and where its files are */
  airgapReleases: { ring: string; version: string; key: string; dir: string }[];
  commands: string[];
  /** OS updates in A/B slots (os:), or undefined without them */
  os?: ReturnType<typeof osUpdatesPlan>;
}

export function day2Plan(fleet: Fleet, expiries: Expiry[] = []): Day2Plan {
  const sites = sitesWithPlans(fleet);
  const key = industryWindowKey(fleet.industry);
  const iw = INDUSTRY_WINDOWS[key];
  const usingIndustry = fleet.sites.filter((s) => s.window.source.startsWith('industry')).map((s) => s.id);
  const images = upgradeImages(fleet);
  const airgap = fleet.k3s.install.mode === 'airgap';
  const airgapReleases = fleetAirgapReleases(fleet);
  const rings = ringVersions(fleet);
  const target = fleet.k3s.canaryVersion ?? fleet.k3s.version;
  const stableSites = fleet.sites.filter((s) => !s.canary && s.devices.some((d) => d.status === 'active'));
  const noMirror = stableSites.filter((s) => !s.devices.find((d) => d.status === 'active')?.registryMirror).map((s) => s.id);
  const archived = new Set(fleet.imageArchives.map((a) => qualifiedImage(a.image)));
  const missing = images.filter((i) => !archived.has(qualifiedImage(i.ref))).map((i) => `\`${qualifiedImage(i.ref)}\``);
  const stage: string[] = airgap
    ? [
        `This fleet installs K3s from an airgap bundle. A new device gets the upgrade path's images as pinned archives (\`k3s.upgrade.images\`, the fleet's image-archive mechanism: checked, then imported by K3s at first boot)${missing.length ? `; missing now (validate warns; until they are pinned, a new device's upgrades wait): ${missing.join(', ')}` : ': every one is pinned'}.`,
        'A running device got its archives at first boot only: a new k3s-upgrade image reaches it through its site registry mirror (`registryMirror`, which K3s uses through registries.yaml).',
        rolloutInProgress(fleet)
          ? `Before \`edgeforge rollout promote\` (stable ring to ${target}): \`${images.find((i) => i.ref.endsWith(target.replace('+', '-')))?.pull ?? target}\` in the mirror of every stable site (${stableSites.map((s) => s.id).join(', ') || 'none'}) and its archive in \`k3s.upgrade.images\`. Promote moves ${target}'s airgap files from \`k3s.install.canary\` to \`k3s.install\`; rebuild the images afterwards so new devices of every site install ${target}.`
          : "Before setting k3s.canaryVersion: the new version's k3s-upgrade image in the mirror of every canary site, its archive in `k3s.upgrade.images`, and its airgap files in `k3s.install.canary` (bundle and sha256; validate requires them), then rebuild the images; before promoting, the image in every other site's mirror.",
        noMirror.length
          ? `Sites without a registry mirror (${noMirror.join(', ')}) cannot pull a new k3s-upgrade image: give them a mirror, or upgrade them with a new fleet base (build with the new airgap bundle and archives, reflash) — their Plans would wait in the window and fail to pull.`
          : 'Every stable site has a registry mirror.',
      ]
    : [
        `Online install: each cluster pulls the images in the table above itself (through its site mirror where the site has one). Nothing to stage; a new device downloads its ring's K3s release at first boot.`,
      ];
  const renewDaysK3s = k3sRenewalDays(fleet.k3s.version);
  const renewal = [
    `K3s ${fleet.k3s.version} issues its client and server certificates for 365 days and renews them when it starts within ${renewDaysK3s} days of their expiry (${K3S_CERT_SOURCES.leaf}: 120 days from ${K3S_CERT_SOURCES.renew120From} on, 90 before); a node that never restarts lets them lapse.`,
    `Every node (servers and agents) runs \`edgeforge-cert-renewal.timer\` inside its site's window: it reads each leaf certificate under /var/lib/rancher/k3s with openssl and restarts K3s (k3s or k3s-agent) when one has fewer than ${RENEW_DAYS} days left — inside the renewal period of every K3s release, so the restart renews; it logs what it found to the journal and /var/log/edgeforge-cert-renewal.log. Nobody logs in.`,
    `The timer fires at the window's opening plus a fixed per-device delay (e.g. \`OnCalendar=${sites[0] ? windowOnCalendar(sites[0].window) : '…'}\`); a window missed while powered off waits for the next one.`,
  ];
  const expires = [
    `K3s CA certificates: generated at the first server's first start, valid for 10 years, not renewed automatically (${K3S_CERT_SOURCES.ca}). Rotating them is \`k3s certificate rotate-ca\`, per cluster, by hand: edgeforge does nothing about it yet (the renewal check logs their expiry).`,
    'Flux deploy keys, SSH host keys, SOPS keys: no expiry (edgeforge creates them without one); they end by rotation (`edgeforge keys rotate`) or revocation.',
    `Agents' join tokens: k3s.joinWindow (${fleet.k3s.joinWindow ?? '30d'}) after \`edgeforge gitops --to\` writes them (by the clock) — only the first join needs them; it rewrites one with fewer than ${joinWindowDays(fleet) / 2} days left (with an admin key), and \`gitops --check\` warns before one runs out.`,
    ...[...new Set(ringVersions(fleet).map((r) => r.version))].map((v) => {
      const minor = parseK3sVersion(v)?.minor;
      const eol = minor === undefined ? undefined : K3S_LINE_EOL[minor];
      return `K3s ${v} (the v1.${minor} line): upstream end of life ${eol ?? 'not on file'} (kubernetes.io/releases); after it, no fixes — roll out a newer line before then.`;
    }),
    ...expiries.map((e) => `${e.what}: ends ${e.expires} (${e.where}; replace it ${e.marginDays} days before).`),
  ];
  const ex = sites.find((s) => s.devices.some((d) => d.cluster.kind === 'multi-node-server')) ?? sites[0];
  const examplePlan = ex ? { path: `${upgradesPath(ex)}/plans.yaml`, yaml: toYaml(sitePlans(ex, fleet).at(-1) as Record<string, never>) } : undefined;
  return {
    airgapReleases: airgapReleases.map((r) => ({ ring: r.ring, version: r.version, key: r.key, dir: r.dir })),
    rings,
    rolloutInProgress: rolloutInProgress(fleet),
    windows: fleet.sites.map((s) => ({ site: s.id, ring: ringOf(s), window: windowText(s.window), source: s.window.source })),
    industry: { key, window: `${iw.days.length === 7 ? 'every day' : iw.days.join(',')} ${iw.start}-${iw.end}`, why: iw.why, sitesUsingIt: usingIndustry },
    images: images.map((i) => ({ pull: i.pull, role: i.role, pinned: Boolean(i.sha256) })),
    stage,
    renewal,
    expires,
    examplePlan,
    ...(fleet.os ? { os: osUpdatesPlan(fleet) } : {}),
    commands: [
      '# start a rollout: set k3s.canaryVersion in the inventory, then',
      "edgeforge validate && edgeforge gitops --to ../fleet-repo   # the canary sites' Plans change; commit, push",
      'edgeforge rollout status --gitops ../fleet-repo             # which ring is on which version',
      "edgeforge rollout promote && edgeforge gitops --to ../fleet-repo   # the stable ring follows, in each site's window",
      'edgeforge rollout diff --gitops ../fleet-repo               # what gitops would change in the Plans',
    ],
  };
}

export function day2Markdown(fleet: Fleet, table: (head: string[], rows: (string | number | undefined)[][]) => string, expiries: Expiry[] = []): string[] {
  const p = day2Plan(fleet, expiries);
  const o: string[] = [];
  o.push(
    `K3s upgrades, certificate renewal and windows come from Git like everything else: the system-upgrade-controller (${controllerVersion(fleet)}, edgeforge's own manifests in \`infrastructure/system-upgrade/\`) runs on each cluster's server and applies its site's Plans (\`upgrades/<region>/<site>/\`), only inside the site's maintenance window. Its memory (limit ${CONTROLLER_MEMORY_LIMIT_MIB} MiB) is in the memory budget above. A device offline for weeks converges on its next poll and upgrades in its next window.`,
    '',
    '### Rings',
    '',
    table(
      ['ring', 'K3s', 'sites', 'devices'],
      p.rings.map((r) => [r.ring, r.version, names(r.sites), r.devices]),
    ),
    '',
    p.rolloutInProgress
      ? `A rollout is in progress: the canary ring runs ${ringVersion(fleet, 'canary')}, the stable ring stays on ${ringVersion(fleet, 'stable')} until \`edgeforge rollout promote\`.`
      : `No rollout in progress. To start one, set \`k3s.canaryVersion\` and run \`edgeforge gitops\`: only canary sites move; the stable ring keeps \`k3s.version\` until \`edgeforge rollout promote\`. A downgrade is refused (validate, gitops).`,
    '',
    "Single-node clusters are upgraded in place without cordon or drain (there is no other node for their pods); at multi-node sites the server goes first (cordoned), then the agents one at a time, each drained. A new device installs its ring's version, so its seed and its Plans agree from the start" +
      (p.airgapReleases.length
        ? ` — in this airgap fleet from its ring's airgap files on the image's K3s partition: ${p.airgapReleases.map((r) => `${r.ring} ${r.version} (\`${r.key}\`${r.dir ? `, directory ${r.dir}/` : ', at its root'})`).join('; ')}.`
        : '.'),
    '',
    '### Maintenance windows',
    '',
    table(
      ['window', 'time zones', 'from', 'ring', 'sites'],
      windowRows(fleet).map((w) => [w.window, w.zones.join(', '), w.source, w.ring, names(w.sites)]),
    ),
    '',
    `${p.industry.sitesUsingIt.length ? `${p.industry.sitesUsingIt.length} site(s) declare no window and get the ${p.industry.key} preset's (${p.industry.window}, ${p.industry.why}), in the site's time zone` : 'Every site declares its own window'}; the presets of every industry are in section "Industry". Override with \`maintenanceWindow\` on defaults, a region or a site.`,
    '',
    '### Upgrade path',
    '',
    table(
      ['image', 'for', 'digest pinned'],
      p.images.map((i) => [`\`${i.pull}\``, i.role, i.pinned ? 'yes' : 'no (tag only; pin in k3s.upgrade)']),
    ),
    '',
    ...p.stage.map((x) => `- ${x}`),
    '',
  );
  if (p.examplePlan) o.push(`One Plan as rendered (\`${p.examplePlan.path}\`):`, '', '```yaml', p.examplePlan.yaml.trimEnd(), '```', '');
  o.push(
    '```bash',
    ...p.commands,
    '```',
    '',
    ...osUpdatesMarkdown(fleet, table),
    '### Certificate renewal',
    '',
    ...p.renewal.map((x) => `- ${x}`),
    '',
    '### What else expires',
    '',
    ...p.expires.map((x) => `- ${x}`),
    '',
  );
  return o;
}
