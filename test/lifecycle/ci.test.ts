// Inventory-driven CI: shards built apart and merged equal one unsharded build; --changed-since builds what changed.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCli } from '../helpers.ts';
const HAVE_TOOLS = requireTools(['git'], 'test/lifecycle/ci.test.ts');

function tree(dir: string, rel = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) for (const [k, v] of tree(dir, r)) out.set(k, v);
    else out.set(r, readFileSync(path.join(dir, r)));
  }
  return out;
}

const env = { SOURCE_DATE_EPOCH: '1767225600' };

describe.runIf(HAVE_TOOLS)('build --shard K/N + manifest merge', () => {
  it('merged shards are identical to an unsharded build', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-shard-'));
    const inv = path.join(dir, 'fleet.yaml');
    copyFileSync('inventory/example.yaml', inv);
    const keys = path.join(dir, 'keys');
    const common = ['-i', inv, '--keys', keys, '--example-admin'];
    const full = await runCli(['build', ...common, '-o', path.join(dir, 'full'), '--json'], { env });
    expect(full.code, full.stderr).toBe(0);
    const shards = [1, 2, 3].map((k) => path.join(dir, `shard-${k}`));
    const built: string[] = [];
    for (let k = 1; k <= 3; k++) {
      const r = await runCli(['build', ...common, '-o', shards[k - 1], '--shard', `${k}/3`, '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      built.push(...JSON.parse(r.stdout).devices.map((d: { id: string }) => d.id));
    }
    expect(built.sort()).toEqual(
      JSON.parse(full.stdout)
        .devices.map((d: { id: string }) => d.id)
        .sort(),
    );
    const merged = path.join(dir, 'merged');
    const m = await runCli(['manifest', 'merge', ...shards, '-o', merged, '-i', inv, '--keys', keys], { env });
    expect(m.code, m.stderr).toBe(0);
    const a = tree(path.join(dir, 'full'));
    const b = tree(merged);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) if (!k.endsWith('.asc')) expect(b.get(k)!.equals(v), k).toBe(true);
    expect(b.get('manifest.json')!.toString()).toBe(a.get('manifest.json')!.toString());
    expect((await runCli(['verify', merged, '--keys', keys])).code).toBe(0);

    // a missing shard is refused
    const bad = await runCli(['manifest', 'merge', shards[0], shards[1], '-o', path.join(dir, 'bad'), '-i', inv, '--keys', keys], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no shard built \d+ active device/);
  }, 240_000);
});

describe.runIf(HAVE_TOOLS)('build --changed-since REV', () => {
  it('builds only the devices whose rendered inputs changed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-changed-'));
    const inv = path.join(dir, 'fleet.yaml');
    copyFileSync('inventory/example.yaml', inv);
    const git = (...a: string[]) => execFileSync(tool('git'), ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { encoding: 'utf8' });
    git('init', '-q');
    git('add', 'fleet.yaml');
    git('commit', '-qm', 'fleet');
    const out = path.join(dir, 'out');
    const first = await runCli(['build', '-i', inv, '--keys', path.join(dir, 'keys'), '--example-admin', '-o', out], { env });
    expect(first.code, first.stderr).toBe(0);
    const before = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    writeFileSync(
      inv,
      readFileSync(inv, 'utf8').replace('address: 10.20.1.21/24', 'address: 10.20.1.29/24').replace('labels: { acme.example/role: quality-inspection }', 'labels: { acme.example/role: quality }'),
    );
    const r = await runCli(['build', '-i', inv, '--keys', path.join(dir, 'keys'), '--example-admin', '-o', out, '--changed-since', 'HEAD', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(
      JSON.parse(r.stdout)
        .devices.map((d: { id: string }) => d.id)
        .sort(),
    ).toEqual(['stuttgart3-qa-001', 'ulsan1-line2-001']);
    // the manifest still covers the fleet: the two rebuilt devices changed, the others kept their artifacts
    const after = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(after.devices.map((d: { id: string }) => d.id)).toEqual(before.devices.map((d: { id: string }) => d.id));
    const changed = after.devices.filter((d: { id: string }, i: number) => JSON.stringify(d) !== JSON.stringify(before.devices[i])).map((d: { id: string }) => d.id);
    expect(changed.sort()).toEqual(['stuttgart3-qa-001', 'ulsan1-line2-001']);
    expect((await runCli(['verify', out, '--keys', path.join(dir, 'keys')])).code).toBe(0);
    git('commit', '-qam', 'readdress');
    const none = await runCli(['build', '-i', inv, '--keys', path.join(dir, 'keys'), '-o', out, '--changed-since', 'HEAD'], { env });
    expect(none.code).toBe(0);
    expect(none.stderr).toContain('nothing to build');
    expect(statSync(path.join(out, 'manifest.json')).isFile()).toBe(true);
  }, 120_000);
});
