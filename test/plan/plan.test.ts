// The plan is a document for a customer: test what it says, not just that it runs — the summary first, tables
// that stay short at 2,000 devices, the per-device detail in the appendix and --format json.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { renderPlanMarkdown, planData } from '../../scripts/render/plan/plan.ts';
import { renderPlanAppendix } from '../../scripts/render/plan/appendix.ts';
import { MAX_ROWS } from '../../scripts/render/plan/md.ts';
import { k3sFlags, runCli } from '../helpers.ts';

const fleet = loadInventoryBytes(readFileSync('inventory/example.yaml'), 'inventory/example.yaml');
const md = renderPlanMarkdown(fleet);
const ap = renderPlanAppendix(fleet);
// the lists on file are the v1.31 line's (test/fixtures/k3s-flags/v1.31/); the inventory may pin a newer line
// (k3s.version): its keys are checked against what K3s v1.31 accepts until that line's lists are added beside
// them — then pass fleet.k3s.version here
const serverFlags = k3sFlags('server', 'v1.31');
const agentFlags = k3sFlags('agent', 'v1.31');

function codeBlocks(doc: string, lang: string): string[] {
  return [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);
}

/** the longest run of table rows in a document */
function longestTable(doc: string): number {
  let best = 0;
  let run = 0;
  for (const l of doc.split('\n')) {
    run = l.startsWith('|') ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best - 2; // header and rule
}

describe('plan (markdown)', () => {
  it('opens with the summary: at a glance, the design in ten lines, risks, what needs a person', () => {
    expect(md).toMatch(/^# acme-smart-factory — edge fleet architecture\n/);
    const heads = [...md.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(heads.slice(0, 5)).toEqual(['At a glance', 'The design in ten lines', 'Risks', 'What needs a person', '1. Fleet']);
    expect(md).toContain('| **devices** | 14 active |');
    expect(md).toContain('| **where** | 4 site(s) in 2 region(s); 1 canary site (kr-south/ulsan-plant-1) |');
    const design = md.slice(md.indexOf('## The design in ten lines'), md.indexOf('## Risks'));
    expect(design.match(/^\d+\. /gm)).toHaveLength(10);
    expect(md).toContain('No disk encryption at 1 site (eu-central/brno-warehouse-1)');
    expect(md).toContain("Pin K3s's install script: `k3s.install.installScriptSha256` is the all-zeros placeholder");
    expect(md).toContain('Register 12 read-only deploy key(s) on the Git host');
    expect(md).toContain('Industry: **manufacturing** (its preset decides the maintenance window, disk encryption, offline tolerance; see section "Industry")');
  });

  it('tables show kinds of things: specs, regions, site classes', () => {
    expect(md).toMatch(/\| rpi4-2g \| raspberry-pi-4 \| 2048 \/ 1940 MiB \| 32 GB sd \| raspi-mbr \| xchacha12,aes-adiantum-plain64 \| 9 \| 7 single-node, 2 multi-node-agent \|/);
    expect(md).toMatch(/\| ipc-4g \| generic-uefi \| 4096 \/ 4032 MiB \| 64 GB emmc \| uefi-gpt \| aes-xts-plain64 \| 1 \| 1 multi-node-server \|/);
    expect(md).toContain('| kr-south | 2 | 7 | kr-south/ulsan-plant-1 | 1 | 2 | 1 |');
    expect(md).toContain('https://registry.ulsan1.acme.example:5000'.replace('https://', '').split(':')[0]);
    // per site, in the appendix
    expect(ap).toContain(
      '| kr-south/changwon-plant-2 | Changwon, KR | 3 | one cluster: server changwon2-server + 2 agent(s), each joining with its own bootstrap token (valid 30d after issue, k3s.joinWindow) |',
    );
    expect(ap).toContain('| kr-south/changwon-plant-2 | changwon2-server | tcp | 6443, 10250 | 10.30.1.21, 10.30.1.22 |');
    expect(ap).toMatch(/\| eu-central\/brno-warehouse-1 \| .* \| nowhere: SSH closed \(no managementSubnet\) \|/);
    expect(ap).toContain('| brno1-dock-003 | eu-central/brno-warehouse-1 | rpi4-2g | single-node server | dhcp | none | yes | stable |');
  });

  it('gives each profile and role a K3s config whose keys are real K3s flags (the plan one in full, the appendix all)', () => {
    const yamls = codeBlocks(ap, 'yaml');
    expect(yamls.length).toBe(planData(fleet).k3s.profiles.length);
    expect(yamls.length).toBeGreaterThanOrEqual(4);
    for (const y of yamls) {
      const cfg = parse(y) as Record<string, unknown>;
      const agent = 'server' in cfg;
      for (const key of Object.keys(cfg)) expect((agent ? agentFlags : serverFlags).has(key), `${key} (${agent ? 'agent' : 'server'})`).toBe(true);
      expect(cfg['protect-kernel-defaults']).toBe(true);
      const kubelet = cfg['kubelet-arg'] as string[];
      expect(kubelet.find((a) => a.startsWith('eviction-hard='))).toMatch(/memory\.available<\d+Mi,nodefs\.available<10%/);
      if (!agent) {
        expect(cfg['flannel-backend']).toBe('wireguard-native');
        expect(cfg['secrets-encryption']).toBe(true);
        expect(cfg['write-kubeconfig-mode']).toBe('0600');
        expect(cfg['disable']).toEqual(['traefik', 'servicelb', 'metrics-server']);
        expect(cfg).not.toHaveProperty('cluster-init');
      }
    }
    // the plan: the most common profile's config in full, each other role as what differs
    expect(md).toContain('### rpi4-2g — single-node server (e.g. `ulsan1-line1-001`)');
    expect(md).toContain('### rpi4-2g — agent (e.g. `changwon2-press-001`): what differs from the config above');
    expect(md).toMatch(/what differs from the config above\n\n```yaml\n[\s\S]*?server: https:\/\/10\.30\.1\.10:6443/);
  });

  it('scales the kubelet reservations with RAM', () => {
    const p = planData(fleet).k3s.profiles;
    const small = p.find((x) => x.profile === 'rpi4-2g' && x.role === 'single-node server')!;
    const big = p.find((x) => x.profile === 'rpi4-4g' && x.role === 'single-node server')!;
    expect(small.tuning.maxPods).toBeLessThan(big.tuning.maxPods);
    expect(small.tuning.kubeReservedMiB).toBeLessThan(big.tuning.kubeReservedMiB);
    expect(small.config).toContain('max-pods=40');
    expect(small.config).toContain('container-log-max-size=5Mi');
  });

  it('shows the pinned install command', () => {
    const bash = codeBlocks(md, 'bash');
    expect(bash[0]).toContain('sha256sum -c');
    expect(bash[0]).toContain('INSTALL_K3S_VERSION="v1.36.5+k3s1"');
    expect(md).toContain('Installed the same way with `INSTALL_K3S_EXEC="agent"`');
  });

  it('lays out the GitOps repository from the real regions, sites and devices', () => {
    expect(md).toContain('ssh://git@git.acme.example/factory/fleet.git');
    expect(md).toMatch(/ {2}sites\/kr-south\/ulsan-plant-1\/ +# its region \+ the canary ring/);
    expect(md).toMatch(/\n {2}kr-south\/ulsan-plant-1\/\n {4}ulsan1-line1-001\/ +# this device's Flux entry point/);
    expect(md).not.toMatch(/ {4}changwon2-press-001\//); // agents have no Flux of their own
    expect(md).not.toContain('No inbound port is opened on any device');
  });

  it("covers offline operation, sync conflicts and theft for an operator, with this fleet's names", () => {
    expect(md).toMatch(/## \d+\. Offline operation/);
    expect(md).toContain('**Data made while offline**: stays on the device');
    expect(md).toMatch(/## \d+\. Sync conflicts and rollouts/);
    expect(md).toContain('**What wins: Git.**');
    expect(md).toContain('**What is overwritten**');
    expect(md).toContain('It does **not** stop its other Kustomizations: `flux-system`');
    expect(md).toContain('1 canary site (kr-south/ulsan-plant-1)');
    expect(md).toContain('`edgeforge revoke ulsan1-line1-001 --reason stolen`');
    expect(md).toContain('Sites without encryption (eu-central/brno-warehouse-1)');
    // a reboot during a tang outage, per site, with what the hardware allows
    expect(md).toContain('kr-south/ulsan-plant-1, eu-central/stuttgart-plant-3: the device boots, answers SSH and keeps its firewall, but the data volume stays locked');
    expect(md).toContain('Option: no TPM on these boards: a second tang server with `threshold: 1` removes the single point of failure.');
    expect(md).toContain('kr-south/changwon-plant-2: the device boots');
    expect(md).toContain('1 of 3 devices have a TPM');
  });

  it('the central load, with a column per transport and the basis of each number', () => {
    expect(md).toMatch(/\|  \| Git over SSH \(Flux GitRepository\) \| OCI artifacts \(Flux OCIRepository\) \| basis \|/);
    expect(md).toMatch(/\| \*\*bytes one device fetches per commit\*\* \| ≈ 36 KB \| .*npm run bench:gitfetch/);
    expect(md).toMatch(/\| \*\*status messages per second\*\* \| 0 \| 0 \| status reporting off \|/);
  });
});

describe('plan at 2,000 devices', () => {
  const big = loadInventoryBytes(Buffer.from(generateInventory(2000)), 'g2000.yaml');
  const bigMd = renderPlanMarkdown(big);
  const withStatus = (t: string) => t.replace(/^admins:/m, 'status: { broker: "mqtts://mqtt.acme.example:8883", caFile: ca.pem }\nadmins:');
  const onOci = (t: string) =>
    t.replace(
      /^(  knownHosts: .*\n)/m,
      '$1  transport: oci\n  oci: { registry: "registry.example.com:5000", repository: fleet, caFile: ca.pem, siteCaches: { "kr-south/kr-plant-001": "cache.example.com:5000" } }\n',
    );
  const variants: [string, string][] = [
    ['2,000 devices', generateInventory(2000)],
    ['2,000 devices, tang, management subnet, status', withStatus(generateInventory(2000, { encryption: 'tang', managementSubnet: true }))],
    ['2,000 devices, tang+TPM2, every site multi-node, status, OCI', onOci(withStatus(generateInventory(2000, { encryption: 'tang+tpm2', managementSubnet: true, multiNode: 'all' })))],
    ['5,000 devices', generateInventory(5000)],
    ['5,000 devices, tang, management subnet, status', withStatus(generateInventory(5000, { encryption: 'tang', managementSubnet: true }))],
  ];
  for (const [name, text] of variants)
    it(`${name}: under 600 lines, every table at most ${MAX_ROWS} rows, no line that lists every site or every agent`, () => {
      const doc = renderPlanMarkdown(loadInventoryBytes(Buffer.from(text), 'g.yaml'));
      const lines = doc.split('\n');
      expect(lines.length).toBeLessThan(600);
      expect(longestTable(doc)).toBeLessThanOrEqual(MAX_ROWS);
      for (const l of lines) {
        expect(l.split(/kr-south\/kr-[a-z]+-\d{3}/).length - 1, l.slice(0, 120)).toBeLessThanOrEqual(8);
        expect((l.match(/\b[a-z]+-[a-z]+-\d{3}-\d{3}\b/g) ?? []).length, l.slice(0, 120)).toBeLessThanOrEqual(8);
      }
    });
  it("a cluster server's config names a few agents in the plan and says the comment is shortened; the appendix quotes the file whole", () => {
    const server = big.active.find((d) => d.cluster.kind === 'multi-node-server')!;
    const agents = server.cluster.kind === 'multi-node-server' ? server.cluster.agents : [];
    expect(agents.length).toBeGreaterThan(8);
    expect(bigMd).toContain(`${agents.slice(0, 4).join(', ')} and ${agents.length - 4} more join with their own bootstrap tokens`);
    expect(bigMd).toContain('A comment naming every agent is shortened here');
    expect(renderPlanAppendix(big)).toContain(`${agents.join(', ')} join with their own bootstrap tokens`);
    expect(bigMd).toContain('| **devices** | 2000 active |');
  });
  it('the appendix and --format json hold every site and device', () => {
    const bigAp = renderPlanAppendix(big);
    for (const d of big.active.slice(0, 50)) expect(bigAp).toContain(`| ${d.id} | ${d.siteId} |`);
    expect(bigAp.match(/^\| [a-z]+-[a-z]+-\d{3}-\d{3} \|/gm)).toHaveLength(2000);
    expect(planData(big).devices).toHaveLength(2000);
  });
});

describe('plan --format json and --appendix', () => {
  it('has the same content as data', async () => {
    const r = await runCli(['plan', '--format', 'json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.fleet).toMatchObject({ name: 'acme-smart-factory', activeDevices: 14, regions: 2, sites: 4 });
    expect(j.specs.map((s: { profile: string }) => s.profile)).toEqual(['rpi4-2g', 'rpi4-4g', 'ipc-4g']);
    expect(j.gitops.fluxDevices).toBe(12);
    expect(j.devices).toHaveLength(14);
    expect(j.summary.design).toHaveLength(10);
    expect(j.load[0].transport).toBe('Git over SSH (Flux GitRepository)');
  });
  it('writes the appendix beside the plan', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-plan-'));
    const r = await runCli(['plan', '--appendix', path.join(dir, 'appendix.md')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# acme-smart-factory — edge fleet architecture/);
    expect(readFileSync(path.join(dir, 'appendix.md'), 'utf8')).toBe(ap);
  });
  it('measures a GitOps tree with git when given one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-plan-tree-'));
    writeFileSync(path.join(dir, 'kustomization.yaml'), 'resources: []\n');
    const r = await runCli(['plan', '--gitops', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`\\| \\*\\*bytes one device fetches per commit\\*\\* \\| \\d+ B \\| .*measured: \`git pack-objects\` of ${dir.replace(/[/.]/g, '\\$&')} \\(1 files, 14 B\\), git version`),
    );
    expect((await runCli(['plan', '--gitops', path.join(dir, 'nope')])).code).toBe(2);
  });
  it('rejects an unknown format', async () => {
    expect((await runCli(['plan', '--format', 'pdf'])).code).toBe(2);
    expect(existsSync('nope')).toBe(false);
  });
});
