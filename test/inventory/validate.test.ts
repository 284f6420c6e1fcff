import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { inventoryJsonSchema } from '../../scripts/inventory/schema.ts';
import { InventoryError } from '../../scripts/util/errors.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'inv.yaml');
function problems(text: string): string[] {
  try {
    load(text);
  } catch (err) {
    if (err instanceof InventoryError) return err.format().split('\n');
    throw err;
  }
  return [];
}
function lineOf(text: string, needle: string, nth = 0): number {
  let i = -1;
  for (let k = 0; k <= nth; k++) i = text.indexOf(needle, i + 1);
  if (i < 0) throw new Error(`fixture lacks ${needle}`);
  return text.slice(0, i).split('\n').length;
}

describe('the example fleet', () => {
  const fleet = load(example);
  it('is the realistic smart-factory fleet the README promises', () => {
    expect(fleet.name).toBe('acme-smart-factory');
    expect(fleet.industry).toBe('manufacturing');
    expect(fleet.regions.length).toBe(2);
    expect(fleet.sites.length).toBeGreaterThanOrEqual(3);
    expect(fleet.active.length).toBeGreaterThanOrEqual(12);
    const rams = new Set(fleet.active.map((d) => d.profile.ramMiB));
    expect(rams.has(2048) && rams.has(4096)).toBe(true);
    expect(fleet.active.some((d) => d.cluster.kind === 'multi-node-agent')).toBe(true);
    expect(fleet.active.some((d) => d.network.mode === 'static')).toBe(true);
    expect(fleet.active.some((d) => d.network.mode === 'dhcp')).toBe(true);
    expect(fleet.active.some((d) => d.registryMirror)).toBe(true);
  });
  it('cascades defaults fleet → region → site → device', () => {
    const d = fleet.devices.find((x) => x.id === 'ulsan1-line1-001')!;
    expect(d.timezone).toBe('Asia/Seoul'); // region
    expect(d.network).toMatchObject({ mode: 'static', ip: '10.20.1.11', prefix: 24, gateway: '10.20.1.1', dns: ['10.20.1.2', '10.20.1.3'] }); // site + device
    expect(d.encryption.tang[0].url).toBe('http://tang.ulsan1.acme.example'); // site overrides defaults
    expect(d.users[0].name).toBe('ops'); // fleet defaults
    expect(d.ssh).toMatchObject({ user: 'ops', port: 22, host: '10.20.1.11' }); // host from the static address
    const s = fleet.devices.find((x) => x.id === 'stuttgart3-asm-001')!;
    expect(s.ntp).toEqual(['ptbtime1.ptb.de', 'time.acme.example']);
    expect(s.network.mode).toBe('dhcp');
    expect(s.profileName).toBe('rpi4-2g'); // from defaults
  });
  it('works out the multi-node cluster', () => {
    const agent = fleet.devices.find((x) => x.id === 'changwon2-press-001')!;
    expect(agent.cluster).toEqual({ kind: 'multi-node-agent', serverId: 'changwon2-server', serverUrl: 'https://10.30.1.10:6443' });
    const server = fleet.devices.find((x) => x.id === 'changwon2-server')!;
    expect(server.cluster).toEqual({ kind: 'multi-node-server', agents: ['changwon2-press-001', 'changwon2-press-002'] });
  });
});

describe('validation reports every problem at once, with positions', () => {
  it('unknown keys get "did you mean"', () => {
    const text = example.replace('    ramMiB: 2048', '    ramMB: 2048').replace('  interval: 5m', '  intervall: 5m');
    const p = problems(text);
    expect(p).toContain(`inv.yaml:${lineOf(text, 'ramMB')}:5: unknown key "ramMB" in profiles.rpi4-2g; did you mean "ramMiB"?`);
    expect(p).toContain(`inv.yaml:${lineOf(text, 'intervall')}:3: unknown key "intervall" in gitops; did you mean "interval"?`);
  });
  it('duplicate serials, MACs and ids across sites, with the first line', () => {
    const text = example
      .replace('serial: 10000000c11d0002', 'serial: 10000000a3f1c001')
      .replace('mac: e4:5f:01:50:01:02', 'mac: DC-A6-32-10-01-01')
      .replace('id: brno1-dock-003', 'id: ulsan1-line1-002');
    const p = problems(text);
    expect(p).toContain(
      `inv.yaml:${lineOf(text, 'serial: 10000000a3f1c001', 1)}:21: serial "10000000a3f1c001" is already used at line ${lineOf(text, 'serial: 10000000a3f1c001')}; serials must be unique across the fleet`,
    );
    expect(p.some((l) => l.includes('MAC "dc:a6:32:10:01:01" is already used'))).toBe(true);
    expect(p.some((l) => l.includes('device id "ulsan1-line1-002" is already used'))).toBe(true);
    expect(p).toHaveLength(3);
  });
  it('bad MAC, bad addresses, gateway outside the subnet, missing profile', () => {
    const text = example.replace('mac: dc:a6:32:10:01:02', 'mac: dc:a6:32:10:01').replace('address: 10.20.1.21/24', 'address: 10.20.1.300/24');
    const p = problems(text);
    expect(p.find((l) => l.includes('must be a MAC address'))).toMatch(new RegExp(`^inv\\.yaml:${lineOf(text, 'mac: dc:a6:32:10:01\n')}:18: `));
    expect(p.find((l) => l.includes('10.20.1.300/24'))).toMatch(/must be an IPv4 address with a prefix length/);
    // fleet-wide checks run once the structure is right
    const text2 = example.replace('address: 10.30.1.22/24', 'address: 10.31.1.22/24').replace('profile: rpi4-4g           # vision', 'profile: rpi4-4gb          # vision');
    const p2 = problems(text2);
    expect(p2.find((l) => l.includes('gateway 10.30.1.1 is not inside 10.31.1.22/24'))).toBeDefined();
    expect(p2.find((l) => l.includes('profile "rpi4-4gb" is not defined'))).toContain('did you mean "rpi4-4g"?');
  });
  it('schema errors and duplicates are reported in the same run', () => {
    const text = example.replace('    ramMiB: 2048', '    ramMiB: lots').replace('serial: 10000000c11d0002', 'serial: 10000000a3f1c001');
    const p = problems(text);
    expect(p.some((l) => l.includes('ramMiB: expected number'))).toBe(true);
    expect(p.some((l) => l.includes('serial "10000000a3f1c001" is already used'))).toBe(true);
  });
  it('deviceCount is derived and checked when stated', () => {
    const p = problems(example.replace('deviceCount: 14', 'deviceCount: 15'));
    expect(p).toEqual([`inv.yaml:${lineOf(example, 'deviceCount: 14')}:16: fleet.deviceCount is 15 but the inventory lists 14 active device(s); fix the count or remove it to have it derived`]);
  });
  it('a multi-node site needs exactly one server with a static address', () => {
    const text = example.replace('role: server              # the agents', 'role: agent               # the agents');
    expect(problems(text).some((l) => l.includes('has 3 agent(s) and 0 active servers'))).toBe(true);
  });
  it('static network needs an address; DHCP must not have one', () => {
    const text = example.replace('            network: { address: 10.20.1.12/24 }\n', '');
    expect(problems(text).some((l) => l.includes('"ulsan1-line1-002" uses a static network but has no "address"'))).toBe(true);
  });
  it('encryption needs what its mode names', () => {
    const text = example.replace('encryption: { mode: none }', 'encryption: { mode: tpm2 }');
    const p = problems(text);
    expect(p.filter((l) => l.includes('needs a TPM, but profile "rpi4-2g" has tpm2: false'))).toHaveLength(3);
  });
  it('replaced devices name their replacement', () => {
    const text = example.replace('            notes: forklift charging bay', '            status: replaced\n            replacedBy: brno1-dock-009');
    expect(problems(text).some((l) => l.includes('replacedBy "brno1-dock-009" is not a device in this inventory'))).toBe(true);
  });
  it('an enum typo gets a suggestion', () => {
    const text = example.replace('mode: tang+tpm2 ', 'mode: tang+tmp2 ');
    expect(problems(text).some((l) => l.includes('"tang+tmp2" is not one of') && l.includes('did you mean "tang+tpm2"?'))).toBe(true);
  });
});

describe('generated fleets', () => {
  it.each([1, 37, 2000])('inventory generate --devices %i is valid and has that many devices', (n) => {
    const f = load(generateInventory(n));
    expect(f.active.length).toBe(n);
    expect(new Set(f.active.map((d) => d.mac)).size).toBe(n);
  });
  it('10,000 devices load in a few seconds', () => {
    const t0 = Date.now();
    const f = load(generateInventory(10000));
    expect(f.active.length).toBe(10000);
    expect(Date.now() - t0).toBeLessThan(20000);
    expect(f.active.some((d) => d.cluster.kind === 'multi-node-agent')).toBe(true);
  });
  it('is deterministic', () => {
    expect(generateInventory(123)).toBe(generateInventory(123));
  });
});

describe('inventory/schema.json', () => {
  it('is in sync with the code (run `npm run schema` after changing scripts/inventory/schema.ts)', () => {
    const committed = JSON.parse(readFileSync('inventory/schema.json', 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(inventoryJsonSchema())));
  });
  it('the example inventory names it in its yaml-language-server modeline', () => {
    expect(example.split('\n')[0]).toBe('# yaml-language-server: $schema=./schema.json');
  });
});
