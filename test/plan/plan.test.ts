// The plan is a document for a customer: test what it says, not just that it runs.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { renderPlanMarkdown, planData } from '../../scripts/render/plan/plan.ts';
import { k3sFlags, runCli } from '../helpers.ts';

const fleet = loadInventoryBytes(readFileSync('inventory/example.yaml'), 'inventory/example.yaml');
const md = renderPlanMarkdown(fleet);
const serverFlags = k3sFlags('server');
const agentFlags = k3sFlags('agent');

function codeBlocks(lang: string): string[] {
  return [...md.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);
}

describe('plan (markdown)', () => {
  it('summarises the fleet with its real numbers', () => {
    expect(md).toMatch(/^# acme-smart-factory — edge fleet architecture/);
    expect(md).toContain('Industry: **manufacturing** (it sets the default maintenance window (every day 05:30-06:30, a factory line\'s early shift change) of the 4 site(s) that declare none; it changes nothing else). 14 active ARM64 devices in 4 sites across 2 regions');
    expect(md).toMatch(/\| rpi4-2g \| raspberry-pi-4 \| 2 GB \| 32 GB sd \| raspi-mbr \| xchacha12,aes-adiantum-plain64 \| 9 \|/);
    expect(md).toMatch(/\| ipc-4g \| generic-uefi \| 4 GB \| 64 GB emmc \| uefi-gpt \| aes-xts-plain64 \| 1 \|/);
    expect(md).toContain('| kr-south/changwon-plant-2 | Changwon, KR | 3 | one cluster: server changwon2-server + 2 agent(s), each joining with its own bootstrap token (valid 30d after issue, k3s.joinWindow) |');
    expect(md).toContain('https://registry.ulsan1.acme.example:5000');
  });

  it('gives each profile and role a K3s config whose keys are real K3s flags', () => {
    // the K3s configs (the Day 2 section's Plan is YAML too)
    const yamls = codeBlocks('yaml').filter((y) => !y.startsWith('apiVersion: upgrade.cattle.io/'));
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
    const bash = codeBlocks('bash');
    expect(bash.length).toBeGreaterThan(0);
    expect(bash[0]).toContain('sha256sum -c');
    expect(bash[0]).toContain('INSTALL_K3S_VERSION="v1.36.5+k3s1"');
    expect(bash.some((b) => b.includes('INSTALL_K3S_EXEC="agent"'))).toBe(true);
  });

  it('lays out the GitOps repository from the real regions, sites and devices', () => {
    expect(md).toContain('ssh://git@git.acme.example/factory/fleet.git');
    expect(md).toMatch(/ {2}sites\/kr-south\/ulsan-plant-1\/ +# its region \+ the canary ring/);
    expect(md).toMatch(/\n {2}kr-south\/ulsan-plant-1\/\n {4}ulsan1-line1-001\/ +# this device's Flux entry point/);
    expect(md).not.toMatch(/ {4}changwon2-press-001\//); // agents have no Flux of their own
    // "no inbound port" only where true: the plan points at its port table instead
    expect(md).not.toContain('No inbound port is opened on any device');
    expect(md).toContain('| kr-south/changwon-plant-2 | changwon2-server | tcp | 6443, 10250 | 10.30.1.21, 10.30.1.22 |');
    expect(md).toMatch(/\| eu-central\/brno-warehouse-1 \| .* \| nowhere: SSH closed \(no managementSubnet\) \|/);
  });

  it('covers offline operation, sync conflicts and theft with this fleet\'s names', () => {
    expect(md).toContain('## 4. Offline operation');
    expect(md).toContain('## 5. Sync conflicts and rollouts');
    expect(md).toContain('kr-south/ulsan-plant-1 take it first');
    expect(md).toContain('`edgeforge revoke ulsan1-line1-001 --reason stolen`');
    expect(md).toContain('Sites without encryption (eu-central/brno-warehouse-1)');
  });
});

describe('plan --format json', () => {
  it('has the same content as data', async () => {
    const r = await runCli(['plan', '--format', 'json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.fleet).toMatchObject({ name: 'acme-smart-factory', activeDevices: 14, regions: 2, sites: 4 });
    expect(j.specs.map((s: { profile: string }) => s.profile)).toEqual(['rpi4-2g', 'rpi4-4g', 'ipc-4g']);
    expect(j.gitops.fluxDevices).toBe(12);
  });
  it('rejects an unknown format', async () => {
    expect((await runCli(['plan', '--format', 'pdf'])).code).toBe(2);
  });
});
