// The K3s upgrade path's manifests (issue #18): every Plan uses only fields the pinned system-upgrade-controller's
// Plan type has, the Plans fit the topology, and everything renders with the real `kubectl kustomize` for the
// example fleet and a generated 2,000-device fleet.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { day2ScaffoldFiles, CONTROLLER_PATH } from '../../scripts/render/day2/scaffold.ts';
import { controllerObjects, planCrd } from '../../scripts/render/day2/controller.ts';
import { sitePlans, sitesWithPlans, upgradesPath } from '../../scripts/render/day2/plans.ts';
import { upgradeImages } from '../../scripts/render/day2/images.ts';
import { validTimeZone } from '../../scripts/inventory/windows.ts';
import { exampleFleet, fakeBundle, generatedFleet } from './fixtures.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
const HAVE_TOOLS = requireTools(['kubectl'], 'test/gitops/upgrades.test.ts');

type Obj = Record<string, any>;
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: fakeBundle().sha256 };

// The json field names of the controller's Plan API, read from its pkg/apis/upgrade.cattle.io/v1/types.go
// (PlanSpec, ContainerSpec, VolumeSpec, DrainSpec, SecretSpec, TimeWindowSpec): names only, to check against.
const PLAN_SPEC = ['concurrency', 'jobActiveDeadlineSecs', 'nodeSelector', 'serviceAccountName', 'channel', 'version', 'secrets', 'tolerations', 'exclusive', 'window', 'prepare', 'upgrade', 'cordon', 'drain', 'imagePullSecrets', 'postCompleteDelay', 'priorityClassName', 'customNodeLabels'];
const CONTAINER = ['image', 'command', 'args', 'envs', 'envFrom', 'volumes', 'securityContext'];
const DRAIN = ['timeout', 'gracePeriod', 'deleteLocalData', 'deleteEmptydirData', 'ignoreDaemonSets', 'force', 'disableEviction', 'skipWaitForDeleteTimeout', 'podSelector'];
const WINDOW = ['days', 'startTime', 'endTime', 'timeZone'];
const DAYS = ['0', 'su', 'sun', 'sunday', '1', 'mo', 'mon', 'monday', '2', 'tu', 'tue', 'tuesday', '3', 'we', 'wed', 'wednesday', '4', 'th', 'thu', 'thursday', '5', 'fr', 'fri', 'friday', '6', 'sa', 'sat', 'saturday'];
const LABEL_SELECTOR = ['matchLabels', 'matchExpressions'];

/** Every key of a Plan's spec that the Plan type does not have, as dotted paths. */
function unknownPlanFields(spec: Obj): string[] {
  const out: string[] = [];
  const only = (o: Obj, allowed: string[], at: string) => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) out.push(`${at}.${k}`);
  };
  only(spec, PLAN_SPEC, 'spec');
  for (const c of ['prepare', 'upgrade']) if (spec[c]) only(spec[c], CONTAINER, `spec.${c}`);
  if (spec.drain) only(spec.drain, DRAIN, 'spec.drain');
  if (spec.window) only(spec.window, WINDOW, 'spec.window');
  if (spec.nodeSelector) only(spec.nodeSelector, LABEL_SELECTOR, 'spec.nodeSelector');
  return out;
}

function kustomize(dir: string): Obj[] {
  return YAML.parseAllDocuments(execFileSync(tool('kubectl'), ['kustomize', dir], { maxBuffer: 64 << 20, encoding: 'utf8' })).map((d) => d.toJS()).filter(Boolean);
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
  it('every Plan of the example fleet uses only fields of the pinned controller\'s Plan type', () => {
    const fleet = exampleFleet(install);
    const all = sitesWithPlans(fleet).flatMap((s) => sitePlans(s, fleet)) as Obj[];
    expect(all.length).toBe(5); // 4 sites, one of them multi-node (server + agent Plan)
    for (const p of all) {
      expect(p.apiVersion).toBe('upgrade.cattle.io/v1');
      expect(p.kind).toBe('Plan');
      expect(unknownPlanFields(p.spec)).toEqual([]);
      expect(p.spec.upgrade.image).toBe('docker.io/rancher/k3s-upgrade');
      expect(p.spec.serviceAccountName).toBe('system-upgrade');
      for (const d of p.spec.window.days) expect(DAYS).toContain(d);
      // kured's timewindow (the controller's window test) parses "15:04"; a window is one span inside a day
      expect(p.spec.window.startTime).toMatch(/^\d\d:\d\d$/);
      expect(p.spec.window.endTime > p.spec.window.startTime).toBe(true);
      expect(validTimeZone(p.spec.window.timeZone)).toBe(true);
    }
    // our CRD describes exactly the Plan type's spec fields
    const crdSpec = (planCrd() as Obj).spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(Object.keys(crdSpec.properties).sort()).toEqual([...PLAN_SPEC].sort());
    expect(Object.keys(crdSpec.properties.window.properties).sort()).toEqual([...WINDOW].sort());
    expect(crdSpec.properties.window.properties.days.items.enum).toEqual(DAYS);
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

  it('the controller\'s images are pinned where the inventory says, and listed for the airgap set', () => {
    const pin = 'sha256:' + 'ab'.repeat(32);
    const fleet = exampleFleet(install, (t) => t.replace('  disable: [traefik', `  upgrade:\n    controller: { ref: registry.local:5000/rancher/system-upgrade-controller:v0.16.1, sha256: "${pin}" }\n  disable: [traefik`));
    const dep = controllerObjects(fleet).find((o: Obj) => o.kind === 'Deployment') as Obj;
    expect(dep.spec.template.spec.containers[0].image).toBe(`registry.local:5000/rancher/system-upgrade-controller:v0.16.1@${pin}`);
    expect(dep.spec.template.spec.containers[0].resources.limits.memory).toBe('64Mi');
    expect(upgradeImages(fleet).map((i) => i.ref)).toEqual(['registry.local:5000/rancher/system-upgrade-controller:v0.16.1', 'docker.io/rancher/kubectl:v1.31.4', 'docker.io/rancher/k3s-upgrade:v1.31.4-k3s1']);
  });
});

describe.runIf(HAVE_TOOLS).each([
  ['the example fleet', () => exampleFleet(install)],
  ['a generated 2,000-device fleet', () => generatedFleet(2000, install)],
])('kubectl kustomize: %s', (_n, make) => {
  it('the controller and every site\'s Plans render', () => {
    const fleet = make();
    const dir = renderTree(fleet);
    const ctl = kustomize(path.join(dir, CONTROLLER_PATH));
    expect(ctl.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'Deployment', 'Namespace', 'Role', 'RoleBinding', 'ServiceAccount']);
    const sites = sitesWithPlans(fleet);
    expect(sites.length).toBeGreaterThan(1);
    let n = 0;
    for (const s of sites) {
      const objs = kustomize(path.join(dir, upgradesPath(s)));
      for (const p of objs) {
        expect(p.kind).toBe('Plan');
        expect(unknownPlanFields(p.spec)).toEqual([]);
        expect(p.spec.window.timeZone).toBe(s.window.timeZone);
        n++;
      }
    }
    expect(n).toBe(sites.length + sites.filter((s) => s.devices.some((d) => d.cluster.kind === 'multi-node-server')).length);
  }, 300_000);
});
