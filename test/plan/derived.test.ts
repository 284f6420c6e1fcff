// Every factual line of `plan` checked against the files the build renders for the same fleet (nftables rules,
// K3s config, Flux manifests, encryption files) — for the example fleet and generated fleets with each encryption
// mode, with and without a management subnet, single- and multi-node. Nothing here is a hard-coded expected string
// about a fleet: the expectation is read from the rendered bytes, with parsers of this test's own.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { generateInventory, type GenerateOptions } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';
import { renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import { prepareEncryption } from '../../scripts/pipeline/encryption.ts';
import { fixedSecretsFor, EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { controllerObjects } from '../../scripts/render/day2/controller.ts';

type Files = Map<string, string>;
interface Rendered {
  fleet: Fleet;
  md: string;
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
  return { fleet, md: renderPlanMarkdown(fleet), files };
}

// --- this test's own readers of the rendered files ---

/** (proto, port, source|undefined) accepted by the input chain of a rendered nftables file */
function accepted(nft: string): { proto: string; port: number; from?: string }[] {
  const out: { proto: string; port: number; from?: string }[] = [];
  for (const line of nft.split('\n').map((l) => l.trim())) {
    if (!line.endsWith('accept') || !/ dport /.test(line) || / sport /.test(line)) continue;
    const from = /ip saddr (\{[^}]*\}|\S+)/.exec(line)?.[1];
    const proto = /(tcp|udp) dport/.exec(line)![1];
    const ports = /dport (\{[^}]*\}|\d+)/.exec(line)![1].replace(/[{}]/g, '').split(',').map((p) => Number(p.trim()));
    for (const port of ports) for (const f of from ? from.replace(/[{}]/g, '').split(',').map((x) => x.trim()) : [undefined]) out.push({ proto, port, from: f });
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
  const at = md.indexOf(heading);
  const lines = md.slice(at).split('\n').slice(2);
  const rows = lines.slice(0, lines.findIndex((l) => !l.startsWith('|')));
  const cells = (l: string) => l.slice(2, -2).split(' | ');
  const head = cells(rows[0]);
  return rows.slice(2).map((r) => Object.fromEntries(cells(r).map((c, i) => [head[i], c])));
}

function check(r: Rendered): void {
  const { fleet, md, files } = r;
  const text = (id: string, p: string) => files.get(id)!.get(p);

  // Flux devices and polls: from the rendered sync files
  const fluxIds = fleet.active.filter((d) => text(d.id, 'bundle/flux/edgeforge-flux-sync.yaml')).map((d) => d.id);
  let polls = 0;
  for (const id of fluxIds) {
    const repo = YAML.parseAllDocuments(text(id, 'bundle/flux/edgeforge-flux-sync.yaml')!).map((d) => d.toJS()).find((d) => d?.kind === 'GitRepository');
    polls += 86400 / seconds(repo.spec.interval);
  }
  expect(md).toContain(`${fluxIds.length} device(s) run Flux`);
  const pm = /([\d,]+) polls a day from the (\d+) Flux device/.exec(md)!;
  expect(Number(pm[1].replace(/,/g, ''))).toBe(Math.round(polls));
  expect(Number(pm[2])).toBe(fluxIds.length);

  // exposure per site: from the rendered nftables rules
  const siteRows = mdTable(md, '### Devices per site');
  expect(siteRows.length).toBe(fleet.sites.length);
  let anyInbound = false;
  for (const s of fleet.sites) {
    const ids = s.devices.filter((d) => d.status === 'active').map((d) => d.id);
    const row = siteRows.find((x) => x.site.replace(' (canary)', '') === s.id)!;
    const rules = ids.flatMap((id) => {
      const dev = fleet.active.find((d) => d.id === id)!;
      return accepted(text(id, 'bundle/system/nftables.nft')!).map((x) => ({ ...x, ssh: x.proto === 'tcp' && x.port === (dev.ssh.port ?? 22) }));
    });
    const ssh = rules.filter((x) => x.ssh);
    if (rules.length) anyInbound = true;
    if (ssh.some((x) => !x.from)) {
      expect(row['SSH from']).toMatch(/^anywhere/);
      expect(md).toMatch(new RegExp(`SSH from anywhere at [^;]*(${s.id}|every site \\(${fleet.sites.length}\\))`));
    } else if (ssh.length) expect(row['SSH from'].split(', ').sort()).toEqual([...new Set(ssh.map((x) => x.from!))].sort());
    else expect(row['SSH from']).toMatch(/^nowhere: SSH closed/);
    const other = rules.filter((x) => !x.ssh);
    if (other.length) {
      for (const x of other) expect(row['other inbound']).toContain(String(x.port));
      expect(row['other inbound']).toContain(other.some((x) => !x.from) ? 'from anywhere' : "from the site's nodes");
      const para = md.split('\n').find((l) => l.startsWith("The firewall's input policy"))!;
      const clause = para.split(';').find((c) => c.includes(s.id) && / \d+\/(tcp|udp)/.test(c))!;
      expect(clause, s.id).toContain(other.some((x) => !x.from) ? 'from anywhere' : 'between the nodes of');
      for (const x of other) expect(clause).toContain(`${x.port}/${x.proto}`);
    } else expect(row['other inbound']).toBe('none');
  }
  expect(md.includes('No device accepts an inbound connection')).toBe(!anyInbound);
  if (md.includes('SSH from anywhere at every site')) expect(siteRows.every((x) => x['SSH from'].startsWith('anywhere'))).toBe(true);

  // offline: what the site's devices were rendered with
  for (const s of fleet.sites) {
    const id = s.devices.find((d) => d.status === 'active')?.id;
    if (!id) continue;
    const bullet = md.split('\n').find((l) => l.startsWith('- ') && l.slice(2, l.indexOf(': ')).split(', ').includes(s.id));
    expect(bullet, s.id).toBeDefined();
    const clevis = text(id, 'bundle/encryption/clevis-config.json');
    if (!clevis) expect(bullet).toContain('no encrypted data volume');
    else {
      expect(bullet).toContain('encrypted data volume');
      expect(bullet).not.toContain('no encrypted data volume');
      if (tangNeeded(clevis) > 0) expect(bullet).toContain('tang server');
      else expect(bullet).toContain('from the TPM without the network');
    }
  }

  // K3s config blocks and the memory budget: from the rendered config and Flux components
  const budget = mdTable(md, '### Memory budget');
  const cited = Object.fromEntries([...md.matchAll(/(K3s server|K3s agent)[^:;]*: (\d+) MiB/g)].map((m) => [m[1], Number(m[2])]));
  expect(cited['K3s server']).toBeGreaterThan(0);
  for (const m of md.matchAll(/### (\S+) — ([a-z -]+) \(e\.g\. `([^`]+)`\)\n\n`\/etc\/rancher\/k3s\/config\.yaml`:\n\n```yaml\n([\s\S]*?)```/g)) {
    const [, profile, role, id, block] = m;
    const config = text(id, 'bundle/k3s/config.yaml')!;
    expect(block).toBe(config);
    const args = (YAML.parse(config)['kubelet-arg'] as string[]) ?? [];
    const arg = (k: string) => args.find((a) => a.startsWith(`${k}=`))!;
    const sys = MiB(/memory=(\d+Mi)/.exec(arg('system-reserved'))![1]);
    const kube = MiB(/memory=(\d+Mi)/.exec(arg('kube-reserved'))![1]);
    const hard = MiB(/memory\.available<(\d+Mi)/.exec(arg('eviction-hard'))![1]);
    const row = budget.find((x) => x.profile === profile && x.role === role)!;
    const ram = fleet.profiles[profile].ramMiB;
    expect(row['OS (system-reserved)']).toBe(`${sys} MiB`);
    expect(row['K3s (kube-reserved)']).toBe(`${kube} MiB`);
    expect(row['hard-eviction reserve']).toBe(`${hard} MiB`);
    expect(kube).toBeGreaterThanOrEqual(role === 'agent' ? cited['K3s agent'] : cited['K3s server']);
    const components = text(id, 'bundle/flux/edgeforge-flux-components.yaml');
    const flux = components ? fluxMemory(components) : [];
    for (const c of flux) if (c.goMemLimit !== undefined) expect(c.goMemLimit).toBe(Math.floor(c.limit * 0.9));
    const fluxMiB = flux.reduce((a, c) => a + c.limit, 0);
    expect(row['Flux controllers'] ?? '-').toBe(components ? `${fluxMiB} MiB` : '-');
    // the K3s upgrade controller (issue #18): its container's limit in the rendered Deployment, on each device that runs Flux
    const suc = (controllerObjects(fleet).find((o) => o.kind === 'Deployment') as Record<string, any>).spec.template.spec.containers[0].resources.limits.memory;
    const sucMiB = components ? MiB(suc) : 0;
    expect(row['K3s upgrade controller'] ?? '-').toBe(components ? `${sucMiB} MiB` : '-');
    expect(row['= RAM']).toBe(`${ram} MiB`);
    expect(row['left for workloads']).toBe(`${ram - sys - kube - hard - fluxMiB - sucMiB} MiB`);
  }

  // secrets: "each agent joins with its own bootstrap token" where agents exist, and their rendered tokens differ
  const agents = fleet.active.filter((d) => d.cluster.kind === 'multi-node-agent');
  const tokens = agents.map((d) => text(d.id, 'bundle/secrets/k3s-agent-token')).filter((t) => t !== undefined); // absent when sealed
  expect(new Set(tokens).size).toBe(tokens.length);
  expect(md.includes('each agent joins with its own bootstrap token')).toBe(agents.length > 0);
  expect(md).not.toContain('join token is shared');
  expect(md).not.toMatch(/nothing ever connects into a device|No inbound port is opened on any device/);
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

  it('fleet.industry changes only the default maintenance window, and the plan says which', () => {
    const plan = (industry: string, window = false) => {
      let t = generateInventory(50, { industry });
      if (window) t = t.replace(/^defaults:\n/m, 'defaults:\n  maintenanceWindow: { days: [sun], start: "01:00", end: "04:00", timeZone: Etc/UTC }\n');
      return renderPlanMarkdown(loadInventoryBytes(Buffer.from(t), `${industry}.yaml`));
    };
    // every site declares its window: industry shapes nothing, and the plan says so
    const [a, b] = [plan('retail', true), plan('energy', true)];
    expect(a).toContain('Industry: **retail** (every site declares its own maintenance window, so it changes no setting)');
    const strip = (t: string, word: string) => t.split('\n').filter((l) => !l.startsWith('Industry **')).join('\n').replace(new RegExp(word, 'g'), 'X');
    expect(strip(a, 'retail')).toBe(strip(b, 'energy'));
    // no window declared: only window lines differ, and the plan names the industry's window
    const [c, d] = [plan('retail'), plan('energy')];
    expect(c).toMatch(/Industry: \*\*retail\*\* \(it sets the default maintenance window \(every day 01:00-06:00, a store outside opening hours\) of the \d+ site\(s\) that declare none; it changes nothing else\)/);
    const cl = strip(c, 'retail').split('\n');
    const dl = strip(d, 'energy').split('\n');
    expect(cl.length).toBe(dl.length);
    const differing = cl.filter((l, i) => l !== dl[i]);
    expect(differing.length).toBeGreaterThan(0);
    for (const l of differing) expect(l, l).toMatch(/\d\d:\d\d|maintenance window/);
  });
});
