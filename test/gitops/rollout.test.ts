// K3s rings through Git: bump the canary version in an inventory, run `edgeforge gitops`, and
// only the canary site's Plans change; `rollout promote` moves the stable ring (comments kept); a downgrade
// is refused with nothing written; the Plans carry each site's window as the controller's TimeWindowSpec.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runCli } from '../helpers.ts';
import { exampleFleet, exampleInventoryText, fakeBundle, fleetKeys, writePublicKeys, snapshot } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['ssh-keygen'], 'test/gitops/rollout.test.ts');

const bundle = fakeBundle();
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };
const NEW = 'v1.36.5+k3s1';
const OLD = 'v1.35.6+k3s1';
let tmp: string;
const inv = () => path.join(tmp, 'fleet.yaml');
const cli = (...argv: string[]) => runCli([...argv, '-i', 'fleet.yaml'], { cwd: tmp });
const gitops = (...extra: string[]) => cli('gitops', '--to', 'repo', '--keys', 'keys', ...extra);
const CANARY = 'upgrades/kr-south/ulsan-plant-1/plans.yaml';
const STABLE = ['upgrades/kr-south/changwon-plant-2/plans.yaml', 'upgrades/eu-central/stuttgart-plant-3/plans.yaml', 'upgrades/eu-central/brno-warehouse-1/plans.yaml'];
const read = (p: string) => readFileSync(path.join(tmp, 'repo', p), 'utf8');
const plans = (p: string) => YAML.parseAllDocuments(read(p)).map((d) => d.toJS());

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-rollout-'));
  // the stable ring one release behind the canary's: the example pins the newest line, v1.36.5+k3s1
  writeFileSync(inv(), exampleInventoryText(install).replace('  version: v1.36.5+k3s1\n', `  version: ${OLD}\n`));
  mkdirSync(path.join(tmp, 'bundles/flux'), { recursive: true });
  writeFileSync(path.join(tmp, 'bundles/flux/install.yaml'), bundle.bytes);
  writePublicKeys(tmp, (await fleetKeys(exampleFleet(install))).keys);
}, 60_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('K3s rollout in rings', () => {
  let before: Record<string, string>;

  it("gitops writes the controller and every site's Plans at k3s.version, each with its window", async () => {
    const r = await gitops();
    expect(r.code, r.stderr).toBe(0);
    // the controller registers its own Plan CRD: the tree ships none
    expect(read('infrastructure/system-upgrade/controller.yaml')).toContain('kind: Deployment');
    expect(read('infrastructure/system-upgrade/controller.yaml')).not.toContain('kind: CustomResourceDefinition');
    const fleet = exampleFleet(install);
    for (const s of fleet.sites) {
      const ps = plans(`upgrades/${s.region}/${s.name}/plans.yaml`);
      for (const p of ps) {
        expect(p.spec.version).toBe(OLD);
        // the controller's TimeWindowSpec: days, startTime, endTime ("15:04"), timeZone
        expect(p.spec.window).toEqual({ days: s.window.days, startTime: s.window.start, endTime: s.window.end, timeZone: s.window.timeZone });
      }
    }
    // manufacturing's default window, in each site's own time zone
    expect(plans(CANARY)[0].spec.window).toEqual({ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], startTime: '05:30', endTime: '06:30', timeZone: 'Asia/Seoul' });
    expect(plans(STABLE[1])[0].spec.window.timeZone).toBe('Europe/Berlin');
    before = snapshot(path.join(tmp, 'repo'));
  });

  it('setting k3s.canaryVersion moves the canary ring only', async () => {
    writeFileSync(inv(), readFileSync(inv(), 'utf8').replace(`  version: ${OLD}\n`, `  version: ${OLD}\n  canaryVersion: ${NEW}   # rollout in progress\n`));
    const diff = await cli('rollout', 'diff', '--gitops', 'repo', '--json');
    expect(diff.code, diff.stderr).toBe(1);
    expect(JSON.parse(diff.stdout).changes).toEqual([{ site: 'kr-south/ulsan-plant-1', ring: 'canary', field: 'version', from: OLD, to: NEW }]);
    const r = await gitops();
    expect(r.code, r.stderr).toBe(0);
    const after = snapshot(path.join(tmp, 'repo'));
    expect(plans(CANARY).map((p) => p.spec.version)).toEqual([NEW]);
    for (const p of STABLE) expect(after[p]).toBe(before[p]);
    const changed = Object.keys(after).filter((p) => after[p] !== before[p]);
    expect(changed).toEqual([CANARY]);
    const st = JSON.parse((await cli('rollout', 'status', '--gitops', 'repo', '--json')).stdout);
    expect(st.inProgress).toBe(true);
    expect(st.rings).toEqual([
      { ring: 'canary', version: NEW, sites: ['kr-south/ulsan-plant-1'], devices: 4 },
      { ring: 'stable', version: OLD, sites: ['kr-south/changwon-plant-2', 'eu-central/stuttgart-plant-3', 'eu-central/brno-warehouse-1'], devices: 10 },
    ]);
    expect(st.sites.every((s: { version: string; inGit: { version: string } }) => s.inGit.version === s.version)).toBe(true);
  });

  it("rollout promote moves the stable ring, keeping the inventory's comments", async () => {
    const r = await cli('rollout', 'promote');
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(inv(), 'utf8');
    expect(text).toContain(`  version: ${NEW}\n`);
    expect(text).not.toMatch(/^  canaryVersion:/m);
    expect(text).toContain("# edgeforge example fleet: ACME's smart factories.");
    expect(text).toContain('# gets GitOps changes first');
    const diff = JSON.parse((await cli('rollout', 'diff', '--gitops', 'repo', '--json')).stdout);
    expect(diff.changes.map((c: { site: string }) => c.site).sort()).toEqual(['eu-central/brno-warehouse-1', 'eu-central/stuttgart-plant-3', 'kr-south/changwon-plant-2']);
    expect((await gitops()).code).toBe(0);
    for (const p of [CANARY, ...STABLE]) for (const pl of plans(p)) expect(pl.spec.version).toBe(NEW);
    // nothing left to promote
    const again = await cli('rollout', 'promote');
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/no rollout in progress/);
  });

  it('a downgrade is refused: by gitops against the tree, by validate in the inventory; nothing written', async () => {
    const snap = snapshot(path.join(tmp, 'repo'));
    const text = readFileSync(inv(), 'utf8');
    writeFileSync(inv(), text.replace(`  version: ${NEW}\n`, `  version: ${OLD}\n`));
    const r = await gitops();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/downgrade refused: .*runs K3s v1\.36\.5\+k3s1 .*the inventory now gives it v1\.35\.6\+k3s1/);
    expect(r.stderr).toMatch(/Nothing was written/);
    expect(snapshot(path.join(tmp, 'repo'))).toEqual(snap);
    writeFileSync(inv(), text.replace(`  version: ${NEW}\n`, `  version: ${NEW}\n  canaryVersion: ${OLD}\n`));
    const v = await cli('validate');
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/^fleet\.yaml:\d+:\d+: downgrade refused: canaryVersion v1\.35\.6\+k3s1 is older than the stable ring's v1\.36\.5\+k3s1/m);
    writeFileSync(inv(), text);
  });
});

describe('rollout promote in an airgap fleet', () => {
  it("moves the canary release's airgap files to k3s.install, so devices built afterwards install it; comments kept", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-promote-airgap-'));
    try {
      const h = (c: string) => c.repeat(64);
      const text = exampleInventoryText(install)
        .replace(
          /  install:\n(    #[^\n]*\n)*    mode: online\n    installScriptSha256: "0+"\n/,
          [
            '  install:',
            '    mode: airgap',
            "    bundle: bundles/k3s-v1.35.6   # the stable ring's release",
            `    sha256: { binary: "${h('a')}", images: "${h('b')}", installScript: "${h('c')}" }`,
            "    canary:                        # the canary ring's release, during the rollout",
            '      bundle: bundles/k3s-v1.36.5',
            '      sha256:',
            `        binary: "${h('d')}"`,
            `        images: "${h('e')}"`,
            `        installScript: "${h('f')}"`,
            '',
          ].join('\n'),
        )
        .replace('  version: v1.36.5+k3s1\n', `  version: ${OLD}\n  canaryVersion: ${NEW}\n`);
      expect(text).toContain('canary:                        #');
      writeFileSync(path.join(dir, 'fleet.yaml'), text);
      const r = await runCli(['rollout', 'promote', '-i', 'fleet.yaml', '--json'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ promoted: NEW, from: OLD, airgapBundle: 'bundles/k3s-v1.36.5' });
      const after = readFileSync(path.join(dir, 'fleet.yaml'), 'utf8');
      expect(after).toContain(`  version: ${NEW}\n`);
      expect(after).toContain(`    bundle: bundles/k3s-v1.36.5   # the stable ring's release\n`);
      expect(after).toContain(`    sha256: { binary: "${h('d')}", images: "${h('e')}", installScript: "${h('f')}" }\n`);
      expect(after).not.toMatch(/^  canaryVersion:|^    canary:|k3s-v1\.35\.6/m);
      expect(after).toContain("# edgeforge example fleet: ACME's smart factories.");
      const v = await runCli(['validate', '-i', 'fleet.yaml'], { cwd: dir });
      expect(v.code, v.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
