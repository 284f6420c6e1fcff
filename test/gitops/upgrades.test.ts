// The K3s upgrade path's manifests: every Plan is one the pinned system-upgrade-controller's own CRD accepts (read
// from its repository, not written from memory), the Plans fit the topology, and everything renders with the real
// `kubectl kustomize` for the example fleet and a generated 2,000-device fleet.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { day2ScaffoldFiles, CONTROLLER_PATH } from '../../scripts/render/day2/scaffold.ts';
import { controllerObjects } from '../../scripts/render/day2/controller.ts';
import { checkObjects } from '../../scripts/conformance/check-objects.ts';
import { crdsOfRelease } from '../../scripts/conformance/upstream-crds.ts';
import { planWindowProblem } from '../../scripts/conformance/plan-window.ts';
import { sitePlans, sitesWithPlans, upgradesPath } from '../../scripts/render/day2/plans.ts';
import { upgradeImages } from '../../scripts/render/day2/upgrade-images.ts';
import { validTimeZone } from '../../scripts/inventory/windows.ts';
import { exampleFleet, fakeBundle, generatedFleet } from './fixtures.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
const HAVE_TOOLS = requireTools(['kubectl'], 'test/gitops/upgrades.test.ts');

type Obj = Record<string, any>;
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: fakeBundle().sha256 };

// The pinned controller's own Plan CRD, read from its repository (upstream/crds/): what its API server accepts.
const SUC_CRDS = crdsOfRelease('system-upgrade-controller@v0.16.1');
const planProblems = (plans: Obj[], minors = [36]) =>
  checkObjects(
    plans.map((object) => ({ path: 'plans.yaml', object })),
    { minors, crds: SUC_CRDS },
  ).map((f) => `${f.ref}: ${f.reason}`);

function kustomize(dir: string): Obj[] {
  return YAML.parseAllDocuments(execFileSync(tool('kubectl'), ['kustomize', dir], { maxBuffer: 64 << 20, encoding: 'utf8' }))
    .map((d) => d.toJS())
    .filter(Boolean);
}

const tmps: string[] = [];
afterAll(() => tmps.forEach((d) => rmSync(d, { recursive: true, force: true })));

function renderTree(fleet: Fleet): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-upgrades-'));
  tmps.push(dir);
  for (const f of day2ScaffoldFiles(fleet)) {
    mkdirSync(path.dirname(path.join(dir, f.path)), { recursive: true });
    writeFileSync(path.join(dir, f.path), f.body);
  }
  return dir;
}

describe('the Plan shape', () => {
  it("every Plan of the example fleet is one the pinned controller's own CRD accepts, with a window it reads", () => {
    const fleet = exampleFleet(install);
    const all = sitesWithPlans(fleet).flatMap((s) => sitePlans(s, fleet)) as Obj[];
    expect(all.length).toBe(5); // 4 sites, one of them multi-node (server + agent Plan)
    expect(SUC_CRDS.map((c) => `${c.group}/${c.version} ${c.kind}`)).toEqual(['upgrade.cattle.io/v1 Plan']);
    expect(planProblems(all)).toEqual([]);
    for (const p of all) {
      expect(p.spec.upgrade.image).toBe('docker.io/rancher/k3s-upgrade');
      expect(p.spec.serviceAccountName).toBe('system-upgrade');
      expect(planWindowProblem(p.spec.window)).toBeUndefined();
      expect(validTimeZone(p.spec.window.timeZone)).toBe(true);
    }
  });

  it('the agent drain timeout decodes as the controller\'s Go time.Duration (JSON nanoseconds); the string "10m" does not', () => {
    const fleet = exampleFleet(install);
    const agent = sitesWithPlans(fleet)
      .flatMap((s) => sitePlans(s, fleet))
      .find((p: Obj) => p.metadata.name === 'k3s-agent') as Obj;
    expect(agent.spec.drain.timeout).toBe(600_000_000_000);
    const before = { ...agent, spec: { ...agent.spec, drain: { ...agent.spec.drain, timeout: '10m' } } };
    expect(planProblems([before])).toEqual([
      expect.stringMatching(/^Plan\/system-upgrade\/k3s-agent: spec\.drain\.timeout: must be a whole number, is a string \("10m"\) \(system-upgrade-controller@v0\.16\.1\)$/),
    ]);
  });

  it('edgeforge ships no Plan CRD: the controller registers its own, and no second writer overwrites it', () => {
    const fleet = exampleFleet(install);
    expect(controllerObjects(fleet).map((o: Obj) => o.kind)).not.toContain('CustomResourceDefinition');
    const role = controllerObjects(fleet).find((o: Obj) => o.kind === 'ClusterRole') as Obj;
    expect(role.rules).toContainEqual(expect.objectContaining({ apiGroups: ['apiextensions.k8s.io'], verbs: expect.arrayContaining(['create', 'update']) }));
  });

  it('fits the topology: single-node clusters are not drained, multi-node sites do the server first, then agents one at a time', () => {
    const fleet = exampleFleet(install);
    const single = fleet.sites.find((s) => s.name === 'ulsan-plant-1')!;
    const [server] = sitePlans(single, fleet) as Obj[];
    expect(sitePlans(single, fleet)).toHaveLength(1);
    expect(server.spec.cordon).toBe(false);
    expect(server.spec.drain).toBeUndefined();
    const multi = fleet.sites.find((s) => s.name === 'changwon-plant-2')!;
    const [ms, ma] = sitePlans(multi, fleet) as Obj[];
    expect(ms.metadata.name).toBe('k3s-server');
    expect(ms.spec.cordon).toBe(true);
    expect(ms.spec.drain).toBeUndefined();
    expect(ms.spec.nodeSelector.matchExpressions).toEqual([{ key: 'node-role.kubernetes.io/control-plane', operator: 'In', values: ['true'] }]);
    expect(ma.metadata.name).toBe('k3s-agent');
    expect(ma.spec.concurrency).toBe(1);
    expect(ma.spec.nodeSelector.matchExpressions).toEqual([{ key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' }]);
    // the agent Plan's prepare step waits for the server Plan
    expect(ma.spec.prepare).toEqual({ image: 'docker.io/rancher/k3s-upgrade', args: ['prepare', 'k3s-server'] });
    expect(ma.spec.drain.force).toBe(true);
  });

  it("the controller's images are pinned where the inventory says, and listed for the airgap set", () => {
    const pin = 'sha256:' + 'ab'.repeat(32);
    const fleet = exampleFleet(install, (t) =>
      t.replace('  disable: [traefik', `  upgrade:\n    controller: { ref: registry.local:5000/rancher/system-upgrade-controller:v0.16.1, sha256: "${pin}" }\n  disable: [traefik`),
    );
    const dep = controllerObjects(fleet).find((o: Obj) => o.kind === 'Deployment') as Obj;
    expect(dep.spec.template.spec.containers[0].image).toBe(`registry.local:5000/rancher/system-upgrade-controller:v0.16.1@${pin}`);
    expect(dep.spec.template.spec.containers[0].resources.limits.memory).toBe('64Mi');
    expect(upgradeImages(fleet).map((i) => i.ref)).toEqual([
      'registry.local:5000/rancher/system-upgrade-controller:v0.16.1',
      'docker.io/rancher/kubectl:v1.35.6',
      'docker.io/rancher/k3s-upgrade:v1.36.5-k3s1',
    ]);
  });
});

describe.runIf(HAVE_TOOLS).each([
  ['the example fleet', () => exampleFleet(install)],
  ['a generated 2,000-device fleet', () => generatedFleet(2000, install)],
])('kubectl kustomize: %s', (_n, make) => {
  it("the controller and every site's Plans render", () => {
    const fleet = make();
    const dir = renderTree(fleet);
    const ctl = kustomize(path.join(dir, CONTROLLER_PATH));
    expect(ctl.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Namespace', 'Role', 'RoleBinding', 'ServiceAccount']);
    const sites = sitesWithPlans(fleet);
    expect(sites.length).toBeGreaterThan(1);
    let n = 0;
    for (const s of sites) {
      const objs = kustomize(path.join(dir, upgradesPath(s)));
      expect(planProblems(objs)).toEqual([]);
      for (const p of objs) {
        expect(p.kind).toBe('Plan');
        expect(p.spec.window.timeZone).toBe(s.window.timeZone);
        n++;
      }
    }
    expect(n).toBe(sites.length + sites.filter((s) => s.devices.some((d) => d.cluster.kind === 'multi-node-server')).length);
  }, 300_000);
});
