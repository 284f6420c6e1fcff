// `edgeforge gitops --to DIR` on a real working tree: creates, updates what edgeforge owns, never clobbers
// or deletes operator files, reports stale files of a retired device, is idempotent.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers.ts';
import { runsFlux } from '../../scripts/render/flux/index.ts';
import { exampleFleet, exampleInventoryText, fakeBundle, fleetKeys, snapshot } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['ssh-keygen'], 'test/gitops/command.test.ts');

const bundle = fakeBundle();
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };
let tmp: string;
const repo = () => path.join(tmp, 'repo');
const read = (p: string) => readFileSync(path.join(repo(), p), 'utf8');
const gitops = (...extra: string[]) => runCli(['gitops', '--to', 'repo', '-i', 'fleet.yaml', '--keys', 'keys', ...extra], { cwd: tmp });
const json = async (...extra: string[]) => {
  const r = await gitops('--json', ...extra);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { created: string[]; updated: string[]; unchanged: number; kept: { path: string; reason: string }[]; stale: string[]; deleted: string[]; warnings: string[] };
};

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-gitops-cmd-'));
  writeFileSync(path.join(tmp, 'fleet.yaml'), exampleInventoryText(install));
  mkdirSync(path.join(tmp, 'bundles/flux'), { recursive: true });
  writeFileSync(path.join(tmp, 'bundles/flux/install.yaml'), bundle.bytes);
  // keys/ as `edgeforge keys init` lays it out (public halves only: all this command reads)
  const fleet = exampleFleet(install);
  const { keys } = await fleetKeys(fleet);
  for (const [id, k] of keys.deviceSops) {
    mkdirSync(path.join(tmp, 'keys/devices', id), { recursive: true });
    writeFileSync(
      path.join(tmp, 'keys/devices', id, 'public.json'),
      JSON.stringify({ format: 'edgeforge-device-keys/1', id, sops: { fingerprint: k.fingerprint, publicKeyArmored: k.publicArmored } }),
    );
  }
  for (const [id, k] of keys.siteSops) {
    mkdirSync(path.join(tmp, 'keys/sites', id), { recursive: true });
    writeFileSync(path.join(tmp, 'keys/sites', id, 'public.json'), JSON.stringify({ format: 'edgeforge-site-keys/1', id, sops: { fingerprint: k.fingerprint, publicKeyArmored: k.publicArmored } }));
  }
  mkdirSync(path.join(tmp, 'keys/admins'), { recursive: true });
  writeFileSync(path.join(tmp, 'keys/admins/ops.asc'), keys.admins[0].publicArmored);
}, 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('edgeforge gitops --to', () => {
  it('--dry-run reports and writes nothing', async () => {
    const r = await json('--dry-run');
    expect(r.created.length).toBeGreaterThan(40);
    expect(existsSync(repo())).toBe(false);
  });

  it('creates the tree on first run', async () => {
    const r = await gitops();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/create  \.sops\.yaml/);
    expect(r.stdout).toMatch(/\d+ created, 0 updated, 0 unchanged/);
    const fleet = exampleFleet(install);
    for (const d of fleet.active.filter(runsFlux)) expect(existsSync(path.join(repo(), `clusters/${d.region}/${d.site}/${d.id}/flux-system/gotk-sync.yaml`))).toBe(true);
  });

  it('keeps operator edits, restores edgeforge-owned files, leaves operator-added files alone', async () => {
    const opFile = 'apps/base/kustomization.yaml';
    const edited = read(opFile).replace('resources:\n', 'resources:\n  - telemetry.yaml\n');
    writeFileSync(path.join(repo(), opFile), edited);
    writeFileSync(path.join(repo(), 'apps/base/telemetry.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: telemetry}\n');
    const sync = 'clusters/kr-south/ulsan-plant-1/ulsan1-line1-001/flux-system/gotk-sync.yaml';
    const original = read(sync);
    writeFileSync(path.join(repo(), sync), original.replace('interval: 10m', 'interval: 1m'));
    const r = await json();
    expect(r.created).toEqual([]);
    expect(r.updated).toEqual([sync]);
    expect(read(opFile)).toBe(edited);
    expect(read('apps/base/telemetry.yaml')).toContain('telemetry');
    expect(read(sync)).toBe(original);
    expect(r.kept.map((k) => k.path)).toContain(opFile);
  });

  it('is idempotent: a second identical run changes nothing', async () => {
    const before = snapshot(repo());
    const r = await json();
    expect(r.created).toEqual([]);
    expect(r.updated).toEqual([]);
    expect(r.stale).toEqual([]);
    expect(snapshot(repo())).toEqual(before);
  });

  it('an operator takes a managed file over by deleting its marker line', async () => {
    const own = read('.sops.yaml').split('\n').slice(1).join('\n') + '# our own rule below\n';
    writeFileSync(path.join(repo(), '.sops.yaml'), own);
    const r = await json();
    expect(r.kept.find((k) => k.path === '.sops.yaml')?.reason).toMatch(/operator owns/);
    expect(read('.sops.yaml')).toBe(own);
  });

  it('a retired device: its managed files are reported stale, deleted only with --prune; operator files stay', async () => {
    writeFileSync(
      path.join(tmp, 'fleet.yaml'),
      exampleInventoryText(install, (t) =>
        t.replace('            notes: forklift charging bay', '            notes: forklift charging bay\n            status: retired').replace('deviceCount: 14', 'deviceCount: 13'),
      ),
    );
    const dir = 'clusters/eu-central/brno-warehouse-1/brno1-dock-003';
    const r = await json();
    expect(r.stale.sort()).toEqual(['.sops/devices/brno1-dock-003.asc', `${dir}/flux-system/gotk-sync.yaml`, `${dir}/flux-system/kustomization.yaml`]);
    expect(existsSync(path.join(repo(), `${dir}/flux-system/gotk-sync.yaml`))).toBe(true);
    // .sops.yaml would drop the device as a recipient, but the operator took it over above: left alone
    expect(r.updated).toEqual([]);
    expect(r.kept.map((k) => k.path)).toContain('.sops.yaml');
    const p = await json('--prune');
    expect(p.deleted.sort()).toEqual(r.stale.sort());
    expect(existsSync(path.join(repo(), `${dir}/flux-system/gotk-sync.yaml`))).toBe(false);
    expect(existsSync(path.join(repo(), `${dir}/flux-system/kustomization.yaml`))).toBe(false);
    // operator files stay, whatever happened to the device: its entry point and its sync patch
    expect(existsSync(path.join(repo(), `${dir}/kustomization.yaml`))).toBe(true);
    expect(existsSync(path.join(repo(), `${dir}/flux-system/sync-patch.yaml`))).toBe(true);
    expect(existsSync(path.join(repo(), '.sops/devices'))).toBe(true);
    expect((await json()).stale).toEqual([]);
  });

  it('warns when the inventory moves a site into the canary ring but the site overlay is the operator’s', async () => {
    writeFileSync(
      path.join(tmp, 'fleet.yaml'),
      exampleInventoryText(install, (t) => t.replace('        location: Stuttgart, DE\n', '        location: Stuttgart, DE\n        canary: true\n')),
    );
    const r = await json();
    expect(r.warnings.join('\n')).toMatch(/overlays\/sites\/eu-central\/stuttgart-plant-3\/kustomization\.yaml.*canary/);
  });

  it('fails clearly (exit 2) without keys, and on a bundle that is not the pinned one', async () => {
    const noKeys = await runCli(['gitops', '--to', 'repo2', '-i', 'fleet.yaml', '--keys', 'nokeys'], { cwd: tmp });
    expect(noKeys.code).toBe(2);
    expect(noKeys.stderr).toMatch(/no SOPS public key for device.*keys init/);
    writeFileSync(path.join(tmp, 'bundles/flux/install.yaml'), Buffer.concat([Buffer.from(bundle.bytes), Buffer.from('# tampered\n')]));
    const bad = await gitops();
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/sha256 is [0-9a-f]{64} but the inventory pins/);
    writeFileSync(path.join(tmp, 'bundles/flux/install.yaml'), bundle.bytes);
    const usage = await runCli(['gitops', '-i', 'fleet.yaml'], { cwd: tmp });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--to DIR is required/);
  });
});
