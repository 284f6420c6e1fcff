// Section "K3s on each spec": tuning per (profile, role), the memory budget against usable RAM, the GitOps
// agent against the seed's 100 MB target, and one rendered config + install per role (the rest: appendix).
import type { PlanData } from './model.ts';
import { PROTECT_KERNEL_SYSCTLS } from '../k3s/tuning.ts';
import { BOARD_MEMORY } from '../../inventory/boards.ts';
import { GITOPS_AGENT_TARGET_MB, WORKLOAD_FLOOR_MIB } from './memory.ts';
import { names, table } from './md.ts';

type Profiles = PlanData['k3s']['profiles'];

/** One example per role (the profile with the most devices): the configs differ by role; RAM only moves numbers, shown in the tables. */
export function configExamples(p: PlanData): Profiles {
  const byRole = new Map<string, Profiles[number]>();
  for (const x of [...p.k3s.profiles].sort((a, b) => b.devices - a.devices)) if (!byRole.has(x.role)) byRole.set(x.role, x);
  return [...byRole.values()];
}

/**
 * The rendered config as the plan quotes it: a comment that lists names (a cluster server's agents) names a few and
 * counts the rest, so the 2,000-device plan has no line of every agent; the appendix quotes the file whole.
 */
function excerpt(config: string): { text: string; shortened: boolean } {
  let shortened = false;
  const text = config
    .split('\n')
    .map((l) => {
      const m = /^(#[^:]*: )((?:[\w.-]+, ){4,}[\w.-]+)( .*)?$/.exec(l);
      if (!m) return l;
      shortened = true;
      return `${m[1]}${names(m[2].split(', '))}${m[3] ?? ''}`;
    })
    .join('\n');
  return { text, shortened };
}

const SHORTENED = 'A comment naming every agent is shortened here (the file on the device names each one; the appendix quotes the file whole).';

/** `whole`: the file as rendered (the appendix); otherwise the plan's excerpt. */
export function configBlocks(xs: Profiles, whole = false): string[] {
  const o: string[] = [];
  for (const x of xs) {
    const c = whole ? { text: x.config.trimEnd(), shortened: false } : excerpt(x.config.trimEnd());
    o.push(
      `### ${x.profile} — ${x.role} (e.g. \`${x.exampleDevice}\`)`,
      '',
      '`/etc/rancher/k3s/config.yaml`:',
      '',
      '```yaml',
      c.text,
      '```',
      '',
      ...(c.shortened ? [SHORTENED, ''] : []),
      'Install (run by the first-boot program):',
      '',
      '```bash',
      x.install,
      '```',
      '',
    );
  }
  return o;
}

const keyOf = (line: string) => /^([a-z-]+):/.exec(line)?.[1];

/** Another role's config as what differs from the full one shown: its keys that are new or changed, and those it lacks. */
export function configDifference(base: Profiles[number], x: Profiles[number]): string[] {
  const baseLines = new Set(base.config.split('\n'));
  const lines = x.config.split('\n');
  const own = new Set(lines.map(keyOf).filter(Boolean));
  const lacks = [
    ...new Set(
      base.config
        .split('\n')
        .map(keyOf)
        .filter((k): k is string => Boolean(k) && !own.has(k)),
    ),
  ];
  // a changed or new key with its comment and list items, skipping the header and unchanged lines
  const changed: string[] = [];
  let parent = '';
  let parentShown = false;
  lines.forEach((l, i) => {
    if (keyOf(l)) [parent, parentShown] = [l, false];
    if (i === 0 || baseLines.has(l) || !l.trim()) return;
    // a changed list item is shown under its key
    if (l.startsWith('  ') && !parentShown && parent && !changed.includes(parent)) changed.push(parent);
    if (keyOf(l)) parentShown = true;
    changed.push(l);
  });
  const exec = /INSTALL_K3S_EXEC="([a-z]+)"/.exec(x.install)?.[1];
  const c = excerpt(changed.join('\n'));
  return [
    `### ${x.profile} — ${x.role} (e.g. \`${x.exampleDevice}\`): what differs from the config above`,
    '',
    '```yaml',
    c.text,
    '```',
    '',
    `${c.shortened ? `${SHORTENED} ` : ''}${lacks.length ? `It has no ${lacks.map((k) => `\`${k}\``).join(', ')}. ` : ''}Installed the same way${exec ? ` with \`INSTALL_K3S_EXEC="${exec}"\`` : ''}. The whole file: the appendix.`,
    '',
  ];
}

export function k3sSection(p: PlanData): string[] {
  const o: string[] = [];
  o.push(
    `K3s ${p.k3s.version}, installed ${p.k3s.installMode === 'online' ? 'online at a pinned version (install script checked against its sha256 before it runs)' : `from a local airgap bundle (binary, images and install script each checked against the inventory sha256${p.k3s.imageArchives.length ? `, and ${p.k3s.imageArchives.length} pinned container image archive(s) placed where K3s imports them at start: ${p.k3s.imageArchives.map((a) => `\`${a.image}\` (${a.component})`).join(', ')}` : ''})`}. Servers use SQLite (no \`cluster-init\`: embedded etcd needs more memory and quorum). Pod traffic uses flannel's \`wireguard-native\` backend; Secrets are encrypted at rest; \`protect-kernel-defaults\` is on, with its sysctls (${PROTECT_KERNEL_SYSCTLS.map(([k, v]) => `\`${k}=${v}\``).join(', ')}) shipped in the seed. Disabled: ${p.k3s.disable.map((d) => `\`${d}\``).join(', ') || 'nothing'}.`,
    '',
  );
  o.push(
    table(
      ['profile', 'role', 'devices', 'RAM (usable)', 'system-reserved', 'kube-reserved', 'evict (hard/soft)', 'allocatable to pods', 'max-pods', 'logs'],
      p.k3s.profiles.map((x) => [
        x.profile,
        x.role,
        x.devices,
        `${x.tuning.ramMiB} (${x.tuning.usableMiB}) MiB`,
        `${x.tuning.systemReservedMiB} MiB`,
        `${x.tuning.kubeReservedMiB} MiB`,
        `${x.tuning.evictionHardMiB}/${x.tuning.evictionSoftMiB} MiB`,
        `${x.tuning.allocatableMiB} MiB`,
        x.tuning.maxPods,
        `${x.tuning.logMaxFiles}×${x.tuning.logMaxSize}`,
      ]),
    ),
    '',
  );
  o.push("K3s's own kubelet defaults evict only on disk pressure; `eviction-hard` with `memory.available` is what keeps the kernel OOM killer away from K3s itself on a 2 GB board.", '');
  o.push('### Memory budget', '');
  const partNames = [...new Set(p.k3s.profiles.flatMap((x) => x.budget.parts.map((b) => b.part.replace(/^K3s (server|agent)/, 'K3s'))))];
  o.push(
    table(
      ['profile', 'role', ...partNames, 'left for workloads', '= usable RAM'],
      p.k3s.profiles.map((x) => {
        const by = new Map(x.budget.parts.map((b) => [b.part.replace(/^K3s (server|agent)/, 'K3s'), b.mib]));
        return [x.profile, x.role, ...partNames.map((n) => (by.has(n) ? `${by.get(n)} MiB` : '-')), `${x.budget.workloadsMiB} MiB`, `${x.budget.ramMiB} MiB`];
      }),
    ),
    '',
  );
  const fp = new Map(p.k3s.profiles.flatMap((x) => x.budget.footprints.map((b) => [b.what, b])));
  const boards = [...new Set(p.specs.filter((s) => s.devices).map((s) => s.board))];
  o.push(
    `The total is the RAM Linux can use, not the nominal size: ${boards.map((b) => `${b}: ${BOARD_MEMORY[b as keyof typeof BOARD_MEMORY].source}`).join('; ')}; and 1/64 of RAM for the kernel's page descriptors. A profile's \`usableRamMiB\` (the board's \`MemTotal\`) replaces the estimate. \`validate\` refuses a profile and role that leave less than ${WORKLOAD_FLOOR_MIB} MiB for workloads.`,
    '',
    `Each reservation is at least a published measurement: ${[...fp.values()].map((b) => `${b.what}: ${b.mib} MiB (${b.source})`).join('; ')}. System pods are counted at their memory limits (Flux: its controllers' limits; GOMEMLIMIT is 90% of each limit). "Left for workloads" is what the operator's pods can use before the kubelet evicts.`,
    '',
  );
  o.push('### The GitOps agent against the 100 MB target', '');
  const agents = p.k3s.gitopsAgent;
  if (!agents.length) o.push('No device runs Flux.', '');
  else {
    const target = agents[0].agent.targetMiB;
    o.push(
      table(
        ['profile', ...agents[0].agent.parts.map((x) => `${x.name} (request / limit)`), 'agent (request / limit)', `target ${GITOPS_AGENT_TARGET_MB} MB (${target} MiB)`],
        agents.map((a) => [
          a.profile,
          ...a.agent.parts.map((x) => `${x.requestMiB} / ${x.limitMiB} MiB`),
          `${a.agent.requestMiB} / ${a.agent.limitMiB} MiB`,
          a.agent.limitMiB <= target
            ? 'met at the limit'
            : a.agent.requestMiB <= target
              ? `met at the request, ${a.agent.limitMiB - target} MiB over at the limit`
              : `${a.agent.requestMiB - target} MiB over at the request, ${a.agent.limitMiB - target} MiB over at the limit`,
        ]),
      ),
      '',
      `What it would take to meet it: Flux's release install.yaml asks 64 MiB per controller (the fleet pins Flux ${p.gitops.fluxVersion}), so its two controllers alone ask 128 MiB, over the target before any limit; edgeforge already cut the limits from the release's 1 GiB per controller to the figures above (docs/gitops.md, "Controllers"). Meeting ${GITOPS_AGENT_TARGET_MB} MB takes one process that fetches and applies — e.g. a small reconciler pulling an OCI artifact — instead of two controller-runtime processes with their own caches; the budget above counts Flux as it runs today.`,
      '',
    );
  }
  const [first, ...others] = configExamples(p);
  if (first) o.push(...configBlocks([first]));
  for (const x of others) o.push(...configDifference(first, x));
  if (p.k3s.profiles.length > 1 + others.length)
    o.push(`The other ${p.k3s.profiles.length - 1 - others.length} profile/role combination(s) differ only in the numbers of the tables above; every config in full is in the appendix.`, '');
  return o;
}
