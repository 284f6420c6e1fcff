// Every factual line of `plan` (and of its appendix, which holds the per-site rows the plan aggregates) checked
// against the files the build renders for the same fleet (nftables rules, K3s config, Flux manifests, encryption
// files) — for the example fleet, generated fleets of 200 and 2,000 devices, and generated fleets with each
// encryption mode, with and without a management subnet, single- and multi-node. Nothing here is a hard-coded
// expected string about a fleet: the expectation is read from the rendered bytes, with parsers of this test's own.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { generateInventory, type GenerateOptions } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';
import { renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { renderPlanAppendix } from '../../scripts/render/plan/appendix.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import { prepareEncryption } from '../../scripts/pipeline/encryption.ts';
import { fixedSecretsFor, EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { controllerObjects } from '../../scripts/render/day2/controller.ts';

type Files = Map<string, string>;
interface Rendered {
  fleet: Fleet;
  md: string;
  /** the appendix: one row per site, rule, host and device */
  ap: string;
  files: Map<string, Files>; // device id -> path -> text
}

async function render(fleet: Fleet, inventoryPath: string): Promise<Rendered> {
  const flux = await prepareFlux(fleet, inventoryPath);
  const encryption = await prepareEncryption(fleet, inventoryPath, fleet.active, 1767225600);
  const files = new Map<string, Files>();
  for (const d of fleet.active) {
    const out: RenderedFile[] = renderDevice(fleet, d, fixedSecretsFor(d), { ...flux.render, encryption });
    files.set(d.id, new Map(out.map((f) => [f.path, Buffer.from(f.bytes).toString('utf8')])));
  }
  return { fleet, md: renderPlanMarkdown(fleet), ap: renderPlanAppendix(fleet), files };
}

// --- this test's own readers of the rendered files ---

/** (proto, port, source|undefined) accepted by the input chain of a rendered nftables file */
function accepted(nft: string): { proto: string; port: number; from?: string }[] {
  const out: { proto: string; port: number; from?: string }[] = [];
  for (const line of nft.split('\n').map((l) => l.trim())) {
    if (!line.endsWith('accept') || !/ dport /.test(line) || / sport /.test(line)) continue;
    const from = /ip saddr (\{[^}]*\}|\S+)/.exec(line)?.[1];
    const proto = /(tcp|udp) dport/.exec(line)![1];
    const ports = /dport (\{[^}]*\}|\d+)/
      .exec(line)![1]
      .replace(/[{}]/g, '')
      .split(',')
      .map((p) => Number(p.trim()));
    for (const port of ports)
      for (const f of from
        ? from
            .replace(/[{}]/g, '')
            .split(',')
            .map((x) => x.trim())
        : [undefined])
        out.push({ proto, port, from: f });
  }
  return out;
}

const MiB = (q: string) => {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
};
const seconds = (d: string) => [...d.matchAll(/(\d+)(h|m|s)/g)].reduce((a, m) => a + Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h'], 0);

/** memory limits and GOMEMLIMIT of the Flux controllers in a rendered components file (manifests or a HelmChart) */
function fluxMemory(components: string): { limit: number; goMemLimit?: number }[] {
  const out: { limit: number; goMemLimit?: number }[] = [];
  for (const doc of YAML.parseAllDocuments(components).map((d) => d.toJS()) as Record<string, any>[]) {
    if (!doc) continue;
    if (doc.kind === 'Deployment') {
      for (const c of doc.spec.template.spec.containers) {
        const gml = c.env?.find((e: any) => e.name === 'GOMEMLIMIT')?.value;
        out.push({ limit: MiB(c.resources.limits.memory), goMemLimit: gml ? MiB(gml.replace('MiB', 'Mi')) : undefined });
      }
    } else if (doc.kind === 'HelmChart') {
      const v = YAML.parse(doc.spec.valuesContent);
      for (const [k, x] of Object.entries(v) as [string, any][]) {
        if (!/Controller$/.test(k) || x.create === false) continue;
        const gml = x.extraEnv?.find((e: any) => e.name === 'GOMEMLIMIT')?.value;
        out.push({ limit: x.resources?.limits?.memory ? MiB(x.resources.limits.memory) : 1024, goMemLimit: gml ? MiB(gml.replace('MiB', 'Mi')) : undefined });
      }
    }
  }
  return out;
}

/** tang servers that must answer for the rendered clevis config to unlock */
function tangNeeded(clevis: string): number {
  const c = JSON.parse(clevis);
  if ('url' in c) return 1;
  if ('t' in c) return Math.max(0, c.t - (c.pins.tpm2 ? 1 : 0));
  return 0;
}

// --- this test's own readers of the plan ---

function mdTable(md: string, heading: string): Record<string, string>[] {
  const at = md.indexOf(`${heading}\n`);
  if (at < 0) throw new Error(`no "${heading}" in the plan`);
  const after = md.slice(at).split('\n').slice(1);
  const lines = after.slice(after.findIndex((l) => l.startsWith('|')));
  const end = lines.findIndex((l) => !l.startsWith('|'));
  const rows = end < 0 ? lines : lines.slice(0, end);
  const cells = (l: string) => l.slice(2, -2).split(' | ');
  const head = cells(rows[0]);
  return rows.slice(2).map((r) => Object.fromEntries(cells(r).map((c, i) => [head[i], c])));
}

/** "a, b and 46 more" -> the names shown and how many in all */
function listed(text: string): { shown: string[]; total: number } {
  const m = /^(.*?)(?: and (\d+) more)?$/.exec(text.trim())!;
  const shown = m[1]
    .split(', ')
    .map((x) => x.trim())
    .filter(Boolean);
  return { shown, total: shown.length + Number(m[2] ?? 0) };
}

function check(r: Rendered): void {
  const { fleet, md, ap, files } = r;
  const text = (id: string, p: string) => files.get(id)!.get(p);
  const activeOf = (s: Fleet['sites'][number]) => s.devices.filter((d) => d.status === 'active');

  // Flux devices and polls: from the rendered sync files
  const fluxIds = fleet.active.filter((d) => text(d.id, 'bundle/flux/edgeforge-flux-sync.yaml')).map((d) => d.id);
  let polls = 0;
  for (const id of fluxIds) {
    const repo = YAML.parseAllDocuments(text(id, 'bundle/flux/edgeforge-flux-sync.yaml')!)
      .map((d) => d.toJS())
      .find((d) => d?.kind === 'GitRepository');
    polls += 86400 / seconds(repo.spec.interval);
  }
  expect(md).toContain(`Flux on ${fluxIds.length} device(s)`);
  const pm = /([\d,]+) polls a day from the (\d+) Flux device/.exec(md)!;
  expect(Number(pm[1].replace(/,/g, ''))).toBe(Math.round(polls));
  expect(Number(pm[2])).toBe(fluxIds.length);
  const central = mdTable(md, `## ${/## (\d+)\. Central load/.exec(md)![1]}. Central load`);
  const mirrored = fleet.active.filter((d) => fluxIds.includes(d.id) && fleet.gitops.mirrors?.[d.siteId]).length;
  if (!mirrored) expect(Number(central.find((x) => x[''] === '**polls a day at the central host**')!['Git over SSH (Flux GitRepository)'].replace(/,/g, ''))).toBe(Math.round(polls));

  // exposure per site (appendix): from the rendered nftables rules
  const siteRows = mdTable(ap, '## Sites');
  expect(siteRows.length).toBe(fleet.sites.length);
  const para = md.split('\n').find((l) => l.startsWith("The firewall's input policy") || l.startsWith('No device accepts'))!;
  let anyInbound = false;
  const openSites: string[] = [];
  const clusterSites: string[] = [];
  for (const s of fleet.sites) {
    const ids = activeOf(s).map((d) => d.id);
    const row = siteRows.find((x) => x.site.replace(' (canary)', '') === s.id)!;
    const rules = ids.flatMap((id) => {
      const dev = fleet.active.find((d) => d.id === id)!;
      return accepted(text(id, 'bundle/system/nftables.nft')!).map((x) => ({ ...x, ssh: x.proto === 'tcp' && x.port === (dev.ssh.port ?? 22) }));
    });
    const ssh = rules.filter((x) => x.ssh);
    if (rules.length) anyInbound = true;
    if (ssh.some((x) => !x.from)) expect(row['SSH from']).toMatch(/^anywhere/);
    else if (ssh.length) expect(row['SSH from'].split(', ').sort()).toEqual([...new Set(ssh.map((x) => x.from!))].sort());
    else expect(row['SSH from']).toMatch(/^nowhere: SSH closed/);
    const other = rules.filter((x) => !x.ssh);
    if (other.length) {
      for (const x of other) expect(row['other inbound']).toContain(String(x.port));
      const open = other.some((x) => !x.from);
      expect(row['other inbound']).toContain(open ? 'from anywhere' : "from the site's nodes");
      (open ? openSites : clusterSites).push(s.id);
    } else expect(row['other inbound']).toBe('none');
  }
  expect(md.includes('No device accepts an inbound connection')).toBe(!anyInbound);
  // the paragraph names (or counts) exactly the sites whose rendered rules open K3s ports
  for (const [sites, words] of [
    [clusterSites, 'between the nodes of '],
    [openSites, 'at '],
  ] as const) {
    const clause = para.split(';').find((c) => / \d+\/(tcp|udp)/.test(c) && c.includes(words === 'at ' ? 'from anywhere' : 'between the nodes of'));
    if (!sites.length) continue;
    const l = listed(clause!.slice(clause!.lastIndexOf(words) + words.length));
    expect(l.total, clause).toBe(sites.length);
    for (const x of l.shown) expect(sites).toContain(x);
  }

  // offline (appendix): what the site's devices were rendered with
  const tangRows = mdTable(ap, '## A reboot while tang is unreachable');
  for (const s of fleet.sites) {
    const id = activeOf(s)[0]?.id;
    if (!id) continue;
    const offline = siteRows.find((x) => x.site.replace(' (canary)', '') === s.id)!.offline;
    const reboot = tangRows.find((x) => x.site === s.id)!['what happens'];
    const clevis = text(id, 'bundle/encryption/clevis-config.json');
    if (!clevis) {
      expect(offline).toContain('no encrypted data volume');
      expect(reboot).toContain('nothing to unlock');
    } else {
      expect(offline).toContain('encrypted data volume');
      expect(offline).not.toContain('no encrypted data volume');
      if (tangNeeded(clevis) > 0) {
        expect(offline).toContain('tang server');
        expect(reboot).toContain('the data volume stays locked');
      } else {
        expect(offline).toContain('from the TPM without the network');
        expect(reboot).toContain('unlocks from the TPM alone');
      }
    }
  }

  // the aggregated tables stand for exactly the appendix's rows
  const classes = mdTable(md, '### Site classes');
  expect(classes.reduce((a, c) => a + Number(c.sites), 0)).toBe(fleet.sites.length);
  expect(classes.reduce((a, c) => a + Number(c.devices), 0)).toBe(fleet.active.length);
  const inbound = mdTable(md, '### Inbound: what the firewall accepts');
  const perSite = mdTable(ap, '## Inbound ports per site');
  for (const row of inbound) {
    const same = perSite.filter((x) => x.protocol === row.protocol && x.ports === row.ports && x.why === row.why);
    expect(same.length, row.why).toBeGreaterThan(0);
    expect(Number(row.sites)).toBe(new Set(same.map((x) => x.site)).size);
  }
  expect(new Set(perSite.map((x) => `${x.protocol} ${x.ports} ${x.why}`)).size).toBe(inbound.length);
  const outbound = mdTable(md, '### Outbound: what the devices contact (the firewall request)');
  for (const x of mdTable(ap, '## Outbound per site')) {
    const why = x.why.replace(/K3s server \S+ \(/, 'K3s server (');
    const row = outbound.find((o) => o.port === x.port && o.why === why && o.when === x.when);
    expect(row, `${x.site} ${x.host} ${x.why}`).toBeDefined();
    if (!/^\d+ hosts,/.test(row!.host)) expect(row!.host.split(', ')).toContain(x.host);
  }

  // K3s config blocks (all in the appendix, one in full in the plan) and the memory budget
  const budget = mdTable(md, '### Memory budget');
  const tuning = mdTable(md, `## ${/## (\d+)\. K3s on each spec/.exec(md)![1]}. K3s on each spec`);
  const cited = Object.fromEntries([...md.matchAll(/(K3s server|K3s agent)[^:;]*: (\d+) MiB/g)].map((m) => [m[1], Number(m[2])]));
  expect(cited['K3s server']).toBeGreaterThan(0);
  const blocks = (doc: string) => [...doc.matchAll(/### (\S+) — ([a-z -]+) \(e\.g\. `([^`]+)`\)\n\n`\/etc\/rancher\/k3s\/config\.yaml`:\n\n```yaml\n([\s\S]*?)```/g)];
  expect(blocks(md).length).toBe(1);
  expect(blocks(ap).length).toBe(budget.length);
  for (const m of [...blocks(md), ...blocks(ap)]) {
    const [, profile, role, id, block] = m;
    const config = text(id, 'bundle/k3s/config.yaml')!;
    expect(block).toBe(config);
    expect(config).not.toMatch(/hold the same one|shared token/);
    const args = (YAML.parse(config)['kubelet-arg'] as string[]) ?? [];
    const arg = (k: string) => args.find((a) => a.startsWith(`${k}=`))!;
    const sys = MiB(/memory=(\d+Mi)/.exec(arg('system-reserved'))![1]);
    const kube = MiB(/memory=(\d+Mi)/.exec(arg('kube-reserved'))![1]);
    const hard = MiB(/memory\.available<(\d+Mi)/.exec(arg('eviction-hard'))![1]);
    const usable = Number(/about (\d+) MiB usable by Linux/.exec(config)![1]);
    const row = budget.find((x) => x.profile === profile && x.role === role)!;
    expect(row['OS (system-reserved)']).toBe(`${sys} MiB`);
    expect(row['K3s (kube-reserved)']).toBe(`${kube} MiB`);
    expect(row['hard-eviction reserve']).toBe(`${hard} MiB`);
    expect(kube).toBeGreaterThanOrEqual(role === 'agent' ? cited['K3s agent'] : cited['K3s server']);
    const components = text(id, 'bundle/flux/edgeforge-flux-components.yaml');
    const flux = components ? fluxMemory(components) : [];
    for (const c of flux) if (c.goMemLimit !== undefined) expect(c.goMemLimit).toBe(Math.floor(c.limit * 0.9));
    const fluxMiB = flux.reduce((a, c) => a + c.limit, 0);
    expect(row['Flux controllers'] ?? '-').toBe(components ? `${fluxMiB} MiB` : '-');
    // the K3s upgrade controller: its container's limit in the rendered Deployment, on each device that runs Flux
    const suc = (controllerObjects(fleet).find((o) => o.kind === 'Deployment') as Record<string, any>).spec.template.spec.containers[0].resources.limits.memory;
    const sucMiB = components ? MiB(suc) : 0;
    expect(row['K3s upgrade controller'] ?? '-').toBe(components ? `${sucMiB} MiB` : '-');
    expect(row['= usable RAM']).toBe(`${usable} MiB`);
    expect(row['left for workloads']).toBe(`${usable - sys - kube - hard - fluxMiB - sucMiB} MiB`);
    const t = tuning.find((x) => x.profile === profile && x.role === role)!;
    expect(t['allocatable to pods']).toBe(`${usable - sys - kube - hard} MiB`);
    expect(config).toContain(`about ${usable - sys - kube - hard} MiB allocatable to pods`);
  }

  // secrets: "each agent joins with its own bootstrap token" where agents exist, and their rendered tokens differ
  const agents = fleet.active.filter((d) => d.cluster.kind === 'multi-node-agent');
  const tokens = agents.map((d) => text(d.id, 'bundle/secrets/k3s-agent-token')).filter((t) => t !== undefined); // absent when sealed
  expect(new Set(tokens).size).toBe(tokens.length);
  expect(md.includes('each agent joins with its own bootstrap token')).toBe(agents.length > 0);
  expect(md).not.toContain('join token is shared');
  expect(md).not.toMatch(/nothing ever connects into a device|No inbound port is opened on any device/);
  // suspend is worded as what it does: the device Kustomization only
  expect(md).toContain('suspends its Kustomization `device` only');
}

describe('plan: every factual line matches the rendered files', () => {
  it('the example fleet', async () => {
    const fleet = loadInventoryBytes(readFileSync(EXAMPLE), EXAMPLE);
    check(await render(fleet, EXAMPLE));
  }, 120_000);

  const variants: GenerateOptions[] = [];
  for (const encryption of ['none', 'tang', 'tpm2', 'tang+tpm2'] as const) {
    for (const managementSubnet of [false, true]) variants.push({ encryption, managementSubnet, multiNode: managementSubnet ? 'all' : 'none' });
  }
  variants.push({ encryption: 'tang', managementSubnet: false, multiNode: 'all' }, { encryption: 'none', managementSubnet: true, multiNode: 'none' });
  for (const v of variants) {
    it(`a generated fleet: encryption ${v.encryption}, ${v.managementSubnet ? 'with' : 'without'} managementSubnet, ${v.multiNode === 'all' ? 'multi-node' : 'single-node'} sites`, async () => {
      const fleet = loadInventoryBytes(Buffer.from(generateInventory(85, v)), 'generated.yaml');
      check(await render(fleet, 'generated.yaml'));
    }, 120_000);
  }

  it('a multi-node site whose agents take DHCP addresses (the K3s ports open from anywhere)', async () => {
    const inv = YAML.parse(generateInventory(85, { multiNode: 'all', managementSubnet: true }));
    for (const r of Object.values(inv.regions) as any[]) for (const s of Object.values(r.sites) as any[]) for (const d of s.devices) if (d.role === 'agent') d.network = { mode: 'dhcp' };
    const fleet = loadInventoryBytes(Buffer.from(YAML.stringify(inv)), 'dhcp-agents.yaml');
    expect(fleet.active.some((d) => d.cluster.kind === 'multi-node-agent' && d.network.mode === 'dhcp')).toBe(true);
    check(await render(fleet, 'dhcp-agents.yaml'));
  }, 120_000);

  for (const n of [200, 2000]) {
    it(`a generated fleet of ${n.toLocaleString('en-US')} devices`, async () => {
      const fleet = loadInventoryBytes(Buffer.from(generateInventory(n)), `generated-${n}.yaml`);
      check(await render(fleet, `generated-${n}.yaml`));
    }, 300_000);
  }

  it('fleet.industry changes exactly what its preset decides, and the plan says which', () => {
    const plan = (industry: string, declared = false) => {
      let t = generateInventory(50, { industry });
      if (declared)
        t = t.replace(
          /^defaults:\n/m,
          'defaults:\n  maintenanceWindow: { days: [sun], start: "01:00", end: "04:00", timeZone: Etc/UTC }\n  policy: { encryption: recommended, offlineTolerance: 2h }\n',
        );
      return renderPlanMarkdown(loadInventoryBytes(Buffer.from(t), `${industry}.yaml`));
    };
    // every setting the preset decides is declared (the generated fleet marks its canary site, has no status): the industry shapes nothing
    const [a, b] = [plan('retail', true), plan('logistics', true)];
    expect(a).toContain('Industry: **retail** (the inventory states every setting its preset would decide, so it changes nothing)');
    const strip = (t: string, word: string) =>
      t
        .split('\n')
        .filter((l) => !/^\| setting \||^Why /.test(l))
        .join('\n')
        .replace(new RegExp(word, 'g'), 'X');
    expect(strip(a, 'retail')).toBe(strip(b, 'logistics'));
    // nothing declared: the lines that differ are the preset's values and the lines derived from them
    const [c, d] = [plan('retail'), plan('logistics')];
    expect(c).toMatch(/Industry: \*\*retail\*\* \(its preset decides the maintenance window, disk encryption, offline tolerance; see section "Industry"\)/);
    const cl = strip(c, 'retail').split('\n');
    const dl = strip(d, 'logistics').split('\n');
    expect(cl.length).toBe(dl.length);
    const differing = cl.filter((l, i) => l !== dl[i]);
    expect(differing.length).toBeGreaterThan(0);
    for (const l of differing) expect(l, l).toMatch(/\d\d:\d\d|maintenance window|offline tolerance|\d+h\b/);
  });
});
