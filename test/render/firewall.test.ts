// The firewall and the plan's port table come from one rule list: for every active device of the example and of a
// generated fleet, the (protocol, port, source) set parsed from its rendered nftables.nft (which `nft -c` accepts)
// equals the set the plan's port table lists for it. SSH is closed where the site has no management subnet, unless
// the inventory opts in with ssh.allowFrom: any; provision refuses a device it cannot reach and says why.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { nftablesRules } from '../../scripts/render/firstboot/system.ts';
import { planData, renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { devicesToProvision } from '../../scripts/provision/engine.ts';
import { SelectionError } from '../../scripts/util/errors.ts';
import { generatedFleet } from '../gitops/fixtures.ts';
import { runCli } from '../helpers.ts';
const HAVE_TOOLS = requireTools(['nft', 'ssh-keygen', ...(process.getuid?.() === 0 ? [] : ['unshare'])], 'test/render/firewall.test.ts');

type Tuple = string; // "proto port source"

/** (protocol, port, source) of every accept rule in table inet edgeforge's input chain, except established/lo. */
function parseNft(text: string): Set<Tuple> {
  const out = new Set<Tuple>();
  const list = (x: string) =>
    x
      .replace(/^\{\s*|\s*\}$/g, '')
      .split(/\s*,\s*/)
      .map((v) => v.replace(/^"|"$/g, ''));
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.endsWith(' accept') || line.startsWith('ct state') || line.startsWith('iif "lo"')) continue;
    const m = /^(?:iifname (\{[^}]*\}|\S+) )?(?:ip saddr (\{[^}]*\}|\S+) )?(?:(tcp|udp) sport (\d+) )?(?:(tcp|udp) dport (\{[^}]*\}|\d+)|meta l4proto (\S+))? ?accept$/.exec(line);
    if (!m) throw new Error(`unparsed firewall rule: ${line}`);
    const [, iif, saddr, , sport, proto, dports, l4] = m;
    const sources = [...(iif ? list(iif).map((i) => `iif:${i}`) : []), ...(saddr ? list(saddr) : [])];
    if (!sources.length) sources.push('any');
    const p = proto ?? (l4 === 'ipv6-icmp' ? 'icmp' : (l4 ?? 'all'));
    const ports = dports ? list(dports) : ['all'];
    for (const s of sources) for (const port of ports) out.add(`${p} ${port}${sport ? `<${sport}` : ''} ${s}`);
  }
  return out;
}

/** The same tuples from the plan's rows for one device. */
function fromPlan(rows: ReturnType<typeof planData>['ports'], id: string): Set<Tuple> {
  const out = new Set<Tuple>();
  for (const r of rows.filter((x) => x.devices.includes(id))) {
    const parts = r.from.split(', ');
    const sport = parts.find((x) => x.startsWith('source port '))?.slice(12);
    // "interfaces a, b, c" was split by ", " too: the names after it are interfaces
    const idx = parts.findIndex((x) => x.startsWith('interfaces '));
    const srcs: string[] = [];
    parts.forEach((x, i) => {
      if (x.startsWith('source port ')) return;
      if (idx >= 0 && i >= idx) srcs.push(`iif:${i === idx ? x.slice(11) : x}`);
      else srcs.push(x === 'anywhere' ? 'any' : x);
    });
    const proto = r.proto === 'icmp' ? 'icmp' : r.proto;
    const ports = r.ports === '-' ? ['all'] : r.ports.split(', ');
    for (const s of srcs) for (const port of ports) out.add(`${proto} ${port}${sport ? `<${sport}` : ''} ${s}`);
  }
  return out;
}

function checkFleet(fleet: Fleet, dir: string) {
  const rows = planData(fleet).ports;
  const md = renderPlanMarkdown(fleet);
  expect(md).toContain('### Inbound: what the firewall accepts');
  for (const d of fleet.active) {
    const text = nftablesRules(d, fleet);
    const file = path.join(dir, `${d.id}.nft`);
    writeFileSync(file, text);
    // throws on a rule nft rejects; CAP_NET_ADMIN for a normal user from a user + network namespace of its own
    if (process.getuid?.() === 0) execFileSync(tool('nft'), ['-c', '-f', file]);
    else execFileSync(tool('unshare'), ['-rn', tool('nft'), '-c', '-f', file]);
    const fw = parseNft(text);
    expect(fw.size, d.id).toBeGreaterThan(3);
    expect([...fromPlan(rows, d.id)].sort(), d.id).toEqual([...fw].sort());
    const ssh = [...fw].filter((t) => t.startsWith(`tcp ${d.ssh.port ?? 22} `));
    if (d.managementSubnet) expect(ssh).toEqual([`tcp ${d.ssh.port ?? 22} ${d.managementSubnet}`]);
    else if ((d.ssh as { allowFrom?: string }).allowFrom === 'any') expect(ssh).toEqual([`tcp ${d.ssh.port ?? 22} any`]);
    else expect(ssh).toEqual([]);
    if (d.cluster.kind === 'single-node') expect([...fw].some((t) => /^(tcp|udp) (6443|10250|51820|51821) /.test(t))).toBe(false);
  }
}

describe.runIf(HAVE_TOOLS)('firewall and plan port table: one rule list', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ef-fw-'));
  it('every site of the example fleet', () => {
    const fleet = loadInventoryBytes(readFileSync('inventory/example.yaml'), 'inventory/example.yaml');
    checkFleet(fleet, dir);
    // brno has no management subnet and does not opt in: SSH closed, and the plan says so
    expect(planData(fleet).sites.find((s) => s.id === 'eu-central/brno-warehouse-1')!.sshFrom).toBe('nowhere: SSH closed (no managementSubnet)');
    expect(() => devicesToProvision({ fleet, only: ['brno1-dock-001'] })).toThrow(SelectionError);
    expect(() => devicesToProvision({ fleet, only: ['brno1-dock-001'] })).toThrow(/SSH is closed on brno1-dock-001: site eu-central\/brno-warehouse-1 has no managementSubnet/);
    expect(devicesToProvision({ fleet }).map((d) => d.id)).not.toContain('brno1-dock-001');
  }, 60_000);

  it('a site that opts in with ssh.allowFrom: any accepts SSH from anywhere, and the plan says so', () => {
    const text = readFileSync('inventory/example.yaml', 'utf8').replace(
      '        encryption: { mode: none }   # documented fallback',
      '        ssh: { allowFrom: any }\n        encryption: { mode: none }   # documented fallback',
    );
    const fleet = loadInventoryBytes(Buffer.from(text), 'inventory/example.yaml');
    checkFleet(fleet, dir);
    expect(planData(fleet).sites.find((s) => s.id === 'eu-central/brno-warehouse-1')!.sshFrom).toBe('anywhere (ssh.allowFrom: any)');
    expect(devicesToProvision({ fleet, only: ['brno1-dock-001'] }).map((d) => d.id)).toEqual(['brno1-dock-001']);
  }, 60_000);

  it('every site of a generated fleet', () => {
    checkFleet(generatedFleet(60, { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' }), dir);
  }, 120_000);

  it('a wrong allowFrom is reported with FILE:LINE:COL', async () => {
    const d = mkdtempSync(path.join(tmpdir(), 'ef-fw-inv-'));
    const text = readFileSync('inventory/example.yaml', 'utf8').replace(
      '        encryption: { mode: none }   # documented fallback',
      '        ssh: { allowFrom: everywhere }\n        encryption: { mode: none }   # documented fallback',
    );
    writeFileSync(path.join(d, 'f.yaml'), text);
    const line = text.split('\n').findIndex((l) => l.includes('allowFrom: everywhere')) + 1;
    const r = await runCli(['validate', '-i', path.join(d, 'f.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`f\\.yaml:${line}:\\d+: .*allowFrom`));
  });
});
