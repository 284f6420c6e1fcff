import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { insertDeviceAfter, removeKeyAt, setDeviceFields, setScalarAt } from '../../scripts/lifecycle/inventory-edit.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { inShard, parseShard, shardOf } from '../../scripts/pipeline/select/shard.ts';
import { runCli } from '../helpers.ts';
const HAVE_TOOLS = requireTools(['git'], 'test/lifecycle/inventory-edit.test.ts');

const example = readFileSync('inventory/example.yaml', 'utf8');
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'inv.yaml');

describe.runIf(HAVE_TOOLS)('inventory edits keep the file as the operator wrote it', () => {
  it('revoking a block-style device adds two lines and changes nothing else', () => {
    let t = setDeviceFields(example, 'ulsan1-line1-002', { status: 'stolen', revoked: { reason: 'stolen', at: '2026-11-28T12:00:00Z' } });
    t = setScalarAt(t, ['fleet', 'deviceCount'], 13);
    const before = example.split('\n');
    const after = t.split('\n');
    expect(after.length).toBe(before.length + 2);
    const changed = after.filter((l) => !before.includes(l));
    expect(changed).toEqual([
      '  deviceCount: 13                    # optional; derived from the devices below and checked when stated',
      '            status: stolen',
      '            revoked: { reason: stolen, at: "2026-11-28T12:00:00Z" }',
    ]);
    const f = load(t);
    expect(f.devices.find((d) => d.id === 'ulsan1-line1-002')).toMatchObject({ status: 'stolen', revoked: { reason: 'stolen' } });
    expect(f.active.length).toBe(13);
  });
  it('an existing key is replaced in place', () => {
    const t1 = setDeviceFields(example, 'brno1-dock-003', { status: 'lost' });
    const t2 = setScalarAt(setDeviceFields(t1, 'brno1-dock-003', { status: 'replaced', replacedBy: 'brno1-dock-001' }), ['fleet', 'deviceCount'], 13);
    expect(t2.match(/status: /g)!.length).toBe(1);
    expect(load(t2).devices.find((d) => d.id === 'brno1-dock-003')).toMatchObject({ status: 'replaced', replacedBy: 'brno1-dock-001' });
  });
  it('flow-style devices stay flow style', () => {
    const g = generateInventory(3);
    let t = setDeviceFields(g, 'kr-plant-001-002', { status: 'stolen' });
    t = insertDeviceAfter(t, 'kr-plant-001-002', { id: 'kr-plant-001-002-r2', serial: 'R2', mac: 'dc:a6:32:00:00:09', network: { address: '10.0.0.19/24' } });
    t = setScalarAt(t, ['fleet', 'deviceCount'], 3);
    expect(t).toContain('network: { address: 10.0.0.11/24 }, status: stolen }');
    expect(t).toContain('          - { id: kr-plant-001-002-r2, serial: R2, mac: "dc:a6:32:00:00:09", network: { address: 10.0.0.19/24 } }');
    expect(load(t).active.map((d) => d.id)).toEqual(['kr-plant-001-001', 'kr-plant-001-002-r2', 'kr-plant-001-003']);
  });
  it('a value YAML would read as a number or a boolean is quoted, so it comes back as the string written', () => {
    for (const serial of ['1e3', '0x1f', '123', 'true', 'null', '1.5']) {
      const t = setDeviceFields(example, 'brno1-dock-003', { serial });
      expect(load(t).devices.find((d) => d.id === 'brno1-dock-003')?.serial, serial).toBe(serial);
    }
  });
  it('a block-style device is inserted with the same indentation', () => {
    const t = insertDeviceAfter(example, 'ulsan1-line1-002', { id: 'ulsan1-line1-003', serial: 'NEW1', mac: 'dc:a6:32:10:01:09', network: { address: '10.20.1.13/24' } });
    expect(t).toContain(
      '          - id: ulsan1-line1-003\n            serial: NEW1\n            mac: "dc:a6:32:10:01:09"\n            network: { address: 10.20.1.13/24 }\n          - id: ulsan1-line2-001',
    );
    expect(load(setScalarAt(t, ['fleet', 'deviceCount'], 15)).active.length).toBe(15);
  });
});

describe.runIf(HAVE_TOOLS)('shards', () => {
  it('partition every device exactly once, stably', () => {
    const ids = load(generateInventory(500)).active.map((d) => d.id);
    const n = 4;
    const counts = [1, 2, 3, 4].map((k) => ids.filter((id) => inShard(id, { k, n })).length);
    expect(counts.reduce((a, b) => a + b)).toBe(500);
    for (const c of counts) expect(c).toBeGreaterThan(90);
    expect(shardOf('ulsan1-line1-001', 4)).toBe(shardOf('ulsan1-line1-001', 4));
    expect(() => parseShard('5/4')).toThrow(/K must be from 1 to N/);
    expect(() => parseShard('two')).toThrow(/K\/N/);
  });
});

describe.runIf(HAVE_TOOLS)('edgeforge diff REV', () => {
  it('shows added, revoked and re-rendered devices against a git revision', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-diff-'));
    const inv = path.join(dir, 'fleet.yaml');
    copyFileSync('inventory/example.yaml', inv);
    const git = (...a: string[]) => execFileSync(tool('git'), ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { encoding: 'utf8' });
    git('init', '-q');
    git('add', '.');
    git('commit', '-qm', 'fleet');
    let t = setDeviceFields(example, 'ulsan1-line1-002', { status: 'stolen' });
    t = insertDeviceAfter(t, 'brno1-dock-003', { id: 'brno1-dock-004', serial: 'NEW4', mac: 'e4:5f:01:50:01:04' });
    t = t.replace('address: 10.20.1.21/24', 'address: 10.20.1.29/24');
    writeFileSync(inv, t);
    const r = await runCli(['diff', 'HEAD', '-i', inv, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.devices).toEqual([
      { id: 'ulsan1-line1-002', change: 'revoked', site: 'kr-south/ulsan-plant-1', fields: ['status'] },
      { id: 'ulsan1-line2-001', change: 're-rendered', site: 'kr-south/ulsan-plant-1', fields: ['network', 'ssh'] },
      { id: 'brno1-dock-004', change: 'added', site: 'eu-central/brno-warehouse-1', fields: [] },
    ]);
    const text = await runCli(['diff', 'HEAD', '-i', inv]);
    expect(text.stdout).toContain('1 added, 0 removed, 1 revoked, 0 reinstated, 1 re-rendered, 12 unchanged');
    expect((await runCli(['diff', 'no-such-rev', '-i', inv])).stderr).toContain('git revision "no-such-rev" does not exist');
  });
});

describe('removeKeyAt (rollout promote drops k3s.canaryVersion)', () => {
  it('removes a block-style key with its comment line, leaving every other line as written', () => {
    const t = 'k3s:\n  version: v1.35.6+k3s1   # stable\n  canaryVersion: v1.36.5+k3s1   # rollout\n  disable: [traefik]\n';
    expect(removeKeyAt(t, ['k3s', 'canaryVersion'])).toBe('k3s:\n  version: v1.35.6+k3s1   # stable\n  disable: [traefik]\n');
  });
  it('removes a flow-style key (first, middle or last) and leaves the text alone when the key is absent', () => {
    expect(removeKeyAt('k3s: { version: a, canaryVersion: b, disable: [x] }\n', ['k3s', 'canaryVersion'])).toBe('k3s: { version: a, disable: [x] }\n');
    expect(removeKeyAt('k3s: { version: a, canaryVersion: b }\n', ['k3s', 'canaryVersion'])).toBe('k3s: { version: a }\n');
    expect(removeKeyAt('k3s: { canaryVersion: b, version: a }\n', ['k3s', 'canaryVersion'])).toBe('k3s: { version: a }\n');
    expect(removeKeyAt('k3s: { version: a }\n', ['k3s', 'canaryVersion'])).toBe('k3s: { version: a }\n');
  });
});
