// The plan's mermaid diagrams (they render on common Git hosts): fleet topology, the pull path, first boot as
// a sequence, theft response. Each is built from the plan's data — a fleet without tang draws no tang, one
// without status no broker — and at fleet scale sites are drawn as classes, not one box each.
// test/plan/diagrams.test.ts parses every one with mermaid's own parser.
import type { Fleet } from '../../inventory/fleet.ts';
import type { PlanData } from './model.ts';
import { siteClasses } from './aggregate.ts';
import { groupBy } from './md.ts';
import { sourceWords } from './transport.ts';

/** Up to this many sites are drawn one box each; more are drawn as site classes per region. */
export const SITES_DRAWN = 8;

/** A mermaid node label: quoted, with the characters mermaid would read as syntax escaped as entities. */
export function label(text: string): string {
  return `"${text.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;')}"`;
}

export interface Diagram {
  title: string;
  source: string;
}

function topology(fleet: Fleet, p: PlanData): string {
  const o = ['flowchart LR'];
  const status = fleet.status;
  const w = sourceWords(fleet);
  o.push(`  git[(${label(w.central)})]`);
  o.push(`  reg[(${label(p.k3s.installMode === 'airgap' ? 'public registries (mirrors only)' : 'public registries')})]`);
  if (status) o.push(`  mqtt{{${label(`status broker ${status.broker.host}`)}}}`);
  let n = 0;
  // edges to the shared nodes (source, registries, broker) are drawn once per kind with "&": a line per box would
  // cost the 2,000-device plan tens of lines
  const direct = { source: [] as string[], reg: [] as string[] };
  const siteBox = (id: string, text: string, s: { tang: boolean; mirror: boolean; gitMirror: boolean }) => {
    o.push(`    ${id}[${label(text)}]`);
    const edges: string[] = [];
    if (s.gitMirror) edges.push(`    ${id} -- "pull" --> ${id}g[(${label(w.siteCacheName)})] --> git`);
    else direct.source.push(id);
    if (s.tang) edges.push(`    ${id} -- "unlock at boot" --> ${id}t((${label('tang')}))`);
    if (s.mirror) edges.push(`    ${id} -- "images" --> ${id}m[(${label('site registry mirror')})] --> reg`);
    else direct.reg.push(id);
    return edges;
  };
  const edges: string[] = [];
  for (const [region, sites] of groupBy(p.sites, (s) => s.region)) {
    o.push(`  subgraph r${n++}[${label(`region ${region}`)}]`);
    if (p.sites.length <= SITES_DRAWN) {
      for (const s of sites) {
        const id = `s${n++}`;
        const k3s = s.multiNode ? s.cluster.replace(/, each joining.*$/, '') : `${s.devices} × single-node K3s`;
        edges.push(
          ...siteBox(id, `${s.site}${s.canary ? ' (canary)' : ''}: ${k3s}`, {
            tang: s.tangRequired || s.encryptionMode.includes('tang'),
            mirror: !!s.registryMirror,
            gitMirror: w.siteCache(s.id),
          }),
        );
      }
    } else {
      // classes of a region share one tang node: each site has its own server, drawn once per region
      const withTang: string[] = [];
      for (const c of siteClasses({ ...p, sites })) {
        const id = `s${n++}`;
        if (c.sites.some((s) => s.encryptionMode.includes('tang'))) withTang.push(id);
        edges.push(...siteBox(id, `${c.sites.length} site(s), ${c.devices} devices: ${c.k3s}`, { tang: false, mirror: c.mirror === 'yes', gitMirror: c.sites.every((s) => w.siteCache(s.id)) }));
      }
      if (withTang.length) edges.push(`    ${withTang.join(' & ')} -- "unlock at boot" --> r${n++}t((${label('tang (one per site)')}))`);
    }
    o.push('  end');
  }
  const boxes = o.filter((l) => /^ {4}s\d+\[/.test(l)).map((l) => l.trim().split('[')[0]);
  if (direct.source.length) edges.push(`    ${direct.source.join(' & ')} -- "${w.edge}" --> git`);
  if (direct.reg.length) edges.push(`    ${direct.reg.join(' & ')} -- "images" --> reg`);
  if (status) edges.push(`    ${boxes.join(' & ')} -. "status" .-> mqtt`);
  return [...o, ...edges].join('\n');
}

function pullPath(fleet: Fleet, p: PlanData): string {
  const w = sourceWords(fleet);
  const caches = p.sites.filter((s) => w.siteCache(s.id)).length;
  const regMirrors = p.sites.some((s) => s.registryMirror);
  const fetch = w.oci ? "the site's artifact when its digest changed" : 'shallow clone of a new revision';
  return [
    'flowchart LR',
    `  op([${label('operator: commit, review, merge')}]) --> ${w.oci ? `repo[(${label(`Git ${p.gitops.branch}`)})]` : `git[(${label(`Git ${p.gitops.branch}`)})]`}`,
    w.oci ? `  repo -- "CI: edgeforge publish" --> git[(${label(w.central)})]` : '',
    caches ? `  git --> gm[(${label(`${w.oci ? 'site caches' : 'site Git mirrors'} (${caches})`)})]` : '',
    `  subgraph dev[${label('each Flux device')}]`,
    `    sc[${label(`source-controller: poll every ${p.gitops.interval} + offset`)}] --> art[(${label('last fetched revision, kept on disk')})]`,
    `    art --> kc[${label('kustomize-controller: apply, prune, every 10m')}]`,
    `    kc --> api[${label('K3s API')}] --> pods[${label('workloads')}]`,
    `    api --> suc[${label('upgrade controller: Plans in the maintenance window')}]`,
    '  end',
    caches ? `  gm -- "${fetch}" --> sc` : '',
    `  git -- "${fetch}" --> sc`,
    `  pods -- "images" --> ${regMirrors ? `rm[(${label('site registry mirror or public registry')})]` : `rm[(${label('public registries')})]`}`,
  ]
    .filter(Boolean)
    .join('\n');
}

function firstBoot(fleet: Fleet, p: PlanData): string {
  const tang = p.sites.some((s) => s.encryptionMode.includes('tang'));
  const tpm = p.sites.some((s) => s.encryptionMode.includes('tpm2'));
  const online = p.k3s.installMode === 'online';
  const status = fleet.status;
  const o = ['sequenceDiagram', '  participant D as device (edgeforge-firstboot)', '  participant N as NTP and DNS'];
  if (tang) o.push('  participant T as site tang');
  if (online) o.push('  participant R as K3s release and registries');
  const w = sourceWords(fleet);
  o.push(`  participant G as ${w.oci ? 'registry (or its site cache)' : 'Git host'}`, ...(status ? ['  participant B as status broker'] : []));
  o.push('  D->>N: preflight: clock after 2025, bundle hashes match the build');
  o.push('  Note over D: identity: hostname, SSH host key, users, firewall (input drop)');
  if (tang) o.push('  D->>T: unseal one-time secrets, bind the LUKS2 data volume');
  if (tpm) o.push('  Note over D: seal the data volume to the TPM');
  if (!tang && !tpm) o.push('  Note over D: encryption none: K3s data on the root filesystem');
  o.push(online ? '  D->>R: install.sh (sha256 checked), K3s binary, images' : '  Note over D: K3s and pinned image archives from the disk image (airgap)');
  o.push('  Note over D: K3s starts with its own token, then the Flux bootstrap');
  o.push(w.oci ? '  D->>G: first poll (its pull credential, pinned registry CA)' : '  D->>G: first poll (deploy key, pinned host key)');
  o.push(w.oci ? "  G-->>D: its site's artifact (clusters/region/site/device inside)" : '  G-->>D: desired state of clusters/region/site/device');
  o.push('  Note over D: erase one-time secrets, record applied.json, renewal timer');
  if (status) o.push('  D-)B: status report (every period and at each milestone)');
  o.push('  Note over D: a failed step is retried (30 s doubling to 15 min) until it is done');
  return o.join('\n');
}

function theft(fleet: Fleet, p: PlanData): string {
  const tang = p.sites.some((s) => s.tangRequired);
  const central = sourceWords(fleet).revokeStep;
  return [
    'flowchart TD',
    `  stolen([${label('device stolen or lost')}]) --> revoke[${label('edgeforge revoke ID --reason stolen')}]`,
    `  revoke --> inv[${label('inventory: status stolen, signed revocation record')}]`,
    `  revoke --> sops[${label('site SOPS key rotated, site secrets re-encrypted')}]`,
    `  revoke --> gitdir[${label('device removed from the GitOps tree')}]`,
    `  revoke --> person{{${label(`a person: ${central}, destroy its escrowed recovery key`)}}}`,
    tang ? `  person --> tang[${label("rotate the site's tang keys if the device could reach tang after the theft")}]` : '',
    `  gitdir --> replace[${label('edgeforge replace ID --serial NEW: fresh identity for the slot')}]`,
  ]
    .filter(Boolean)
    .join('\n');
}

export function planDiagrams(fleet: Fleet, p: PlanData): { topology: Diagram; pullPath: Diagram; firstBoot: Diagram; theft: Diagram } {
  return {
    topology: { title: p.sites.length <= SITES_DRAWN ? 'Fleet topology' : 'Fleet topology (sites drawn by class, per region)', source: topology(fleet, p) },
    pullPath: { title: 'The pull path', source: pullPath(fleet, p) },
    firstBoot: { title: 'First boot', source: firstBoot(fleet, p) },
    theft: { title: 'Theft response', source: theft(fleet, p) },
  };
}

export function mermaidBlock(d: Diagram): string[] {
  return [`**${d.title}**`, '', '```mermaid', d.source, '```', ''];
}
