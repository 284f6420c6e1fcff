// The conformance checks on their own, each with a case it must refuse and one it must pass: a built-in kind
// against the Kubernetes API of a K3s line (read from the upstream client of that release), a custom resource
// against a CRD schema, an immutable field changed under one name, an expired join token, the images edgeforge's
// objects pull, and the upgrade controller's window rule.
import { describe, expect, it } from 'vitest';
import { checkObjects, type TreeObject } from '../../scripts/conformance/check-objects.ts';
import { checkOpenApi } from '../../scripts/conformance/check-openapi.ts';
import { kubernetesApi, kubernetesApiSources } from '../../scripts/conformance/kubernetes-api.ts';
import { checkTransition } from '../../scripts/conformance/transitions.ts';
import { expiryFindings, joinTokenExpiries } from '../../scripts/conformance/expiry.ts';
import { checkImages, imagesOf } from '../../scripts/conformance/image-pins.ts';
import { revokedAgentObjects } from '../../scripts/render/gitops/join-tokens.ts';
import { crdsOfRelease, readUpstreamFile, UPSTREAM_CRDS_DIR, upstreamReleases } from '../../scripts/conformance/upstream-crds.ts';
import { kubernetesApiMinors } from '../../scripts/conformance/kubernetes-api.ts';
import { KNOWN_K3S_MINORS, k3sVersionProblem } from '../../scripts/inventory/k3s-versions.ts';
import { runCli } from '../helpers.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { fluxHelmImages } from '../../scripts/render/flux/components.ts';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

const obj = (path: string, object: Record<string, unknown>): TreeObject => ({ path, object });
const deployment = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'x', namespace: 'y', labels: { a: 'b' }, creationTimestamp: null },
  spec: {
    replicas: 1,
    selector: { matchLabels: { a: 'b' } },
    template: {
      metadata: { labels: { a: 'b' } },
      spec: { containers: [{ name: 'c', image: 'r.example/i:1', resources: { limits: { memory: '64Mi', cpu: 1 } }, ports: [{ containerPort: 80 }] }], ...extra },
    },
  },
});

describe('the Kubernetes API per K3s line', () => {
  it('is read from the upstream client generated for that release, recorded with its integrity', () => {
    const s = kubernetesApiSources();
    for (const m of ['1.29', '1.30', '1.34', '1.36']) {
      expect(s[m].package).toMatch(/^@kubernetes\/client-node@\d/);
      expect(s[m].integrity).toMatch(/^sha512-/);
      expect(s[m].openapi).toContain(m);
    }
    // a minor without a client of its own is read as what both neighbours on file have (a subset)
    expect(kubernetesApi(31)!.readFrom).toBe('1.30 ∩ 1.32');
    expect(kubernetesApi(35)!.readFrom).toBe('1.34 ∩ 1.36');
    expect(kubernetesApi(35)!.source).toMatch(/client-node@1\.4\.0 .* and .*client-node@2\.0\.1 .* \(no client was generated from 1\.35\)/);
    // outside the data on file there is no API, not the nearest one
    expect(kubernetesApi(27)).toBeUndefined();
    expect(kubernetesApi(37)).toBeUndefined();
  });

  it('serves no group/version upstream removed: the clients carry stale files, only their generated index counts', () => {
    const serves = (m: number, gv: string) =>
      kubernetesApi(m)!
        .servedAs(gv.startsWith('flowcontrol') ? 'FlowSchema' : 'ResourceClaim')
        .includes(gv);
    // the deprecation guide (kubernetes.io/docs/reference/using-api/deprecation-guide/): flowcontrol v1beta3 is
    // no longer served as of 1.32, v1beta2 as of 1.29
    expect(serves(30, 'flowcontrol.apiserver.k8s.io/v1beta3')).toBe(true);
    for (const m of [32, 33, 34, 35, 36]) expect(serves(m, 'flowcontrol.apiserver.k8s.io/v1beta3'), `1.${m}`).toBe(false);
    for (const m of [29, 30, 31, 32, 36]) expect(serves(m, 'flowcontrol.apiserver.k8s.io/v1beta2'), `1.${m}`).toBe(false);
    // resource.k8s.io/v1alpha2 (classic DRA) was removed in 1.31 with v1alpha3 in its place
    expect(serves(30, 'resource.k8s.io/v1alpha2')).toBe(true);
    for (const m of [31, 32, 33, 34, 35, 36]) expect(serves(m, 'resource.k8s.io/v1alpha2'), `1.${m}`).toBe(false);
    const f = checkObjects([obj('fs.yaml', { apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta3', kind: 'FlowSchema', metadata: { name: 'x' } })], { minors: [30, 32], crds: [] });
    expect(f.map((x) => x.reason)).toContainEqual(
      expect.stringMatching(/^Kubernetes 1\.32 does not serve FlowSchema as flowcontrol\.apiserver\.k8s\.io\/v1beta3 \(it serves it as flowcontrol\.apiserver\.k8s\.io\/v1\)/),
    );
  });

  it('a K3s line without API data on file is an error, never a silent pass', () => {
    const objects = [obj('a.yaml', deployment())];
    expect(checkObjects(objects, { minors: [36], crds: [] })).toEqual([]);
    for (const minors of [[27, 36], [37], []]) {
      const f = checkObjects(objects, { minors, crds: [] });
      expect(f.length, JSON.stringify(minors)).toBeGreaterThan(0);
      expect(f.every((x) => !x.warning)).toBe(true);
    }
    expect(checkObjects(objects, { minors: [27, 36], crds: [] })).toEqual([
      { path: '(tree)', ref: 'K3s/v1.27', reason: expect.stringMatching(/^no Kubernetes API of 1\.27 is on file \(upstream\/kubernetes\/api\.json has 1\.28 to 1\.36\)/) },
    ]);
  });

  it('knows ValidatingAdmissionPolicy is admissionregistration.k8s.io/v1 from 1.30 and only v1beta1 before', () => {
    expect(kubernetesApi(29)!.kind('admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicy')).toBeUndefined();
    expect(kubernetesApi(29)!.servedAs('ValidatingAdmissionPolicy')).toContain('admissionregistration.k8s.io/v1beta1');
    for (const m of [30, 31, 32, 33, 34, 35, 36]) expect(kubernetesApi(m)!.kind('admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicy'), `1.${m}`).toBeDefined();
  });
});

describe('built-in kinds', () => {
  const t = { minors: [34, 35], crds: [] };
  it('a well-formed Deployment passes (a quantity may be a number, null means unset)', () => {
    expect(checkObjects([obj('a.yaml', deployment())], t)).toEqual([]);
  });
  it('an unknown field, a wrong type and an unknown kind are refused, naming the field and the line', () => {
    const f = checkObjects(
      [
        obj('a.yaml', deployment({ hostNetwrk: true })),
        obj('b.yaml', { ...deployment(), spec: { ...deployment().spec, replicas: '1' } }),
        obj('c.yaml', { apiVersion: 'batch/v1', kind: 'CronJobb', metadata: { name: 'z' } }),
      ],
      t,
    );
    expect(f.find((x) => x.path === 'a.yaml')?.reason).toMatch(/^spec\.template\.spec\.hostNetwrk: unknown field/);
    expect(f.find((x) => x.path === 'b.yaml')?.reason).toMatch(/^spec\.replicas: must be a number, is a string/);
    expect(f.find((x) => x.path === 'c.yaml')?.reason).toMatch(/Kubernetes 1\.34 does not serve CronJobb as batch\/v1/);
  });
  it('a kind of a group Kubernetes does not serve is a custom resource, even under .k8s.io: unchecked without its CRD (a warning)', () => {
    const f = checkObjects([obj('s.yaml', { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 'x' } })], t);
    expect(f).toEqual([expect.objectContaining({ warning: true, reason: expect.stringMatching(/^cannot be checked: no CRD for VolumeSnapshot/) })]);
  });
  it("a revoked agent's admission policy cannot apply on a 1.29 line, and can on every line from 1.30", () => {
    const objects = revokedAgentObjects('press-001', 'docker.io/rancher/kubectl:v1.34.2').map((o) => obj('revoked-press-001.yaml', o));
    const on29 = checkObjects(objects, { minors: [29], crds: [] });
    expect(on29.map((f) => `${f.ref}: ${f.reason}`)).toEqual([
      expect.stringMatching(
        /^ValidatingAdmissionPolicy\/edgeforge-revoked-press-001: Kubernetes 1\.29 does not serve ValidatingAdmissionPolicy as admissionregistration\.k8s\.io\/v1 \(it serves it as admissionregistration\.k8s\.io\/v1alpha1, admissionregistration\.k8s\.io\/v1beta1\) — "no matches for kind"/,
      ),
      expect.stringMatching(/^ValidatingAdmissionPolicyBinding\/edgeforge-revoked-press-001: Kubernetes 1\.29 does not serve/),
    ]);
    expect(checkObjects(objects, { minors: [30, 31, 32, 33, 34, 35, 36], crds: [] })).toEqual([]);
  });
});

describe('custom resources against a CRD schema', () => {
  const schema = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        required: ['upgrade'],
        properties: {
          upgrade: { type: 'object', properties: { image: { type: 'string' } } },
          drain: { type: 'object', properties: { timeout: { type: 'integer', format: 'int64' }, force: { type: 'boolean' } } },
          window: { type: 'object', properties: { days: { type: 'array', minItems: 1, items: { type: 'string', enum: ['mon', 'tue'] } } } },
          interval: { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$' },
          any: { 'x-kubernetes-int-or-string': true },
        },
      },
    },
  };
  it('passes a good object and names every problem of a bad one', () => {
    expect(checkOpenApi(schema, { spec: { upgrade: { image: 'x' }, drain: { timeout: 600000000000 }, window: { days: ['mon'] }, interval: '5m', any: 3 } })).toEqual([]);
    expect(checkOpenApi(schema, { spec: { drain: { timeout: '10m', forse: true }, window: { days: ['sun'] }, interval: '5 minutes', any: 1.5 } })).toEqual([
      'spec.upgrade: required',
      'spec.drain.timeout: must be a whole number, is a string ("10m")',
      'spec.drain.forse: unknown field (the schema has timeout, force)',
      'spec.window.days[0]: must be one of "mon", "tue", is "sun"',
      'spec.interval: "5 minutes" does not match ^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
      'spec.any: must be a whole number or a string, is a number',
    ]);
  });
  it('a patch is checked for fields and types, not for required fields', () => {
    expect(checkOpenApi(schema, { spec: { drain: { force: true } } }, { partial: true })).toEqual([]);
  });
});

describe('transitions from the tree the clusters applied before', () => {
  const job = (image: string, name = 'revoke-a') =>
    obj('j.yaml', {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, namespace: 'kube-system' },
      spec: { template: { spec: { containers: [{ name: 'c', image }], restartPolicy: 'OnFailure' } } },
    });
  it('a Job whose pod template changes under the same name is refused: its template is immutable', () => {
    const f = checkTransition([job('kubectl:v1.33.5')], [job('kubectl:v1.34.2')]);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ path: 'j.yaml', ref: 'Job/kube-system/revoke-a' });
    expect(f[0].reason).toMatch(/^spec\.template changes under the same name/);
  });
  it('the same change under a new name, or with Flux told to recreate it, is fine', () => {
    expect(checkTransition([job('kubectl:v1.33.5')], [job('kubectl:v1.34.2', 'revoke-a-2')])).toEqual([]);
    const forced = job('kubectl:v1.34.2');
    (forced.object.metadata as Record<string, unknown>).annotations = { 'kustomize.toolkit.fluxcd.io/force': 'enabled' };
    expect(checkTransition([job('kubectl:v1.33.5')], [forced])).toEqual([]);
  });
  it('the revocation Job takes a new name when its kubectl image changes (a promote, a new pin)', () => {
    const before = revokedAgentObjects('press-001', 'docker.io/rancher/kubectl:v1.33.5').map((o) => obj('r.yaml', o));
    const after = revokedAgentObjects('press-001', 'docker.io/rancher/kubectl:v1.34.2').map((o) => obj('r.yaml', o));
    expect(checkTransition(before, after)).toEqual([]);
    const names = (l: TreeObject[]) => l.filter((t) => t.object.kind === 'Job').map((t) => (t.object.metadata as { name: string }).name);
    expect(names(before)[0]).not.toBe(names(after)[0]);
    expect(names(after)[0]).toMatch(/^revoke-press-001-[0-9a-f]{8}$/);
    // and an unchanged image keeps the name (Flux does not re-run the Job for nothing)
    expect(names(before)).toEqual(names(revokedAgentObjects('press-001', 'docker.io/rancher/kubectl:v1.33.5').map((o) => obj('r.yaml', o))));
  });
});

describe('what expires', () => {
  const token = (expires: string) =>
    obj('jt/a.token.yaml', {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'bootstrap.kubernetes.io/token',
      metadata: { name: 'bootstrap-token-abcdef', namespace: 'kube-system', labels: { 'edgeforge.dev/agent': 'press-001' }, annotations: { 'edgeforge.dev/expires': expires } },
    });
  const now = new Date('2026-12-07T00:00:00Z');
  it('an expired token and one inside its renewal margin are reported with their dates; a fresh one is not', () => {
    const f = expiryFindings(joinTokenExpiries([token('2026-01-31T00:00:00Z'), token('2026-12-15T00:00:00Z'), token('2027-01-06T00:00:00Z')], 30), now);
    expect(f.map((x) => x.message)).toEqual([
      'jt/a.token.yaml: join token Secret/kube-system/bootstrap-token-abcdef of agent press-001 expired on 2026-01-31T00:00:00Z (310 days ago)',
      'jt/a.token.yaml: join token Secret/kube-system/bootstrap-token-abcdef of agent press-001 expires on 2026-12-15T00:00:00Z, in 8 days: inside its 15-day renewal margin',
    ]);
  });
});

describe("the images edgeforge's objects pull", () => {
  const pod = (image: string) => obj('c.yaml', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'c' }, spec: { template: { spec: { containers: [{ name: 'c', image }] } } } });
  const digest = 'sha256:' + 'a'.repeat(64);
  const pinned = [
    { ref: `docker.io/rancher/kubectl:v1.34.2@${digest}`, role: 'kubectl' },
    { ref: 'docker.io/rancher/system-upgrade-controller:v0.16.1', role: 'controller' },
  ];
  it('must name a registry, be pinned by the inventory, and carry its digest (tag-only is a warning)', () => {
    expect(checkImages([pod(`docker.io/rancher/kubectl:v1.34.2@${digest}`)], pinned)).toEqual([]);
    const f = checkImages([pod('rancher/kubectl:v1.34.2'), pod('docker.io/rancher/system-upgrade-controller:v0.16.1'), pod('ghcr.io/x/y:1')], pinned);
    expect(f.map((x) => [x.severity, x.reason.split(' (')[0].split(':')[0]])).toEqual([
      ['error', 'image rancher/kubectl'],
      ['error', 'image rancher/kubectl'],
      ['warning', 'image docker.io/rancher/system-upgrade-controller'],
      ['error', 'image ghcr.io/x/y'],
    ]);
  });
});

describe('one writer per CRD', () => {
  const release = 'system-upgrade-controller@v0.16.1';
  const theirs = () => parse(readUpstreamFile(path.join(UPSTREAM_CRDS_DIR, release, 'upgrade.cattle.io_plans.yaml')).body.toString('utf8')) as Record<string, any>;
  const t = { minors: [36], crds: crdsOfRelease(release) };
  it("a tree's CRD byte-for-byte the pinned release's own passes; one with a field the release lacks is two writers", () => {
    expect(checkObjects([obj('crds/plans.yaml', theirs())], t)).toEqual([]);
    const mine = theirs();
    mine.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.customNodeLabels = { type: 'object', additionalProperties: { type: 'string' } };
    expect(checkObjects([obj('crds/plans.yaml', mine)], t)).toEqual([
      {
        path: 'crds/plans.yaml',
        ref: 'CustomResourceDefinition/plans.upgrade.cattle.io',
        reason: expect.stringMatching(
          /^this Plan CRD differs from the one system-upgrade-controller@v0\.16\.1 installs \(crds\/system-upgrade-controller@v0\.16\.1\/upgrade\.cattle\.io_plans\.yaml\): two writers would keep overwriting each other/,
        ),
      },
    ]);
    // a CRD of a kind no pinned release defines has one writer: the tree
    const other = theirs();
    other.metadata.name = 'widgets.example.com';
    other.spec.group = 'example.com';
    other.spec.names = { ...other.spec.names, kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' };
    expect(checkObjects([obj('crds/widgets.yaml', other)], t)).toEqual([]);
  });
});

describe("a flux2 HelmChart's images (in its valuesContent)", () => {
  const chart = (values: string) =>
    obj('flux.yaml', { apiVersion: 'helm.cattle.io/v1', kind: 'HelmChart', metadata: { name: 'flux2', namespace: 'kube-system' }, spec: { chart: 'flux2', valuesContent: values } });
  it('are read from the values the chart takes: image, tag, create (with the chart defaults) and checked like any other', () => {
    const c = chart(
      'sourceController: {tag: v1.9.6}\nkustomizeController: {image: registry.example/fluxcd/kustomize-controller, tag: v1.9.6}\nhelmController: {create: true}\nnotificationController: {create: false}\nimageAutomationController: {create: false}\nimageReflectionController: {create: false}\n',
    );
    expect(imagesOf(c.object)).toEqual(['ghcr.io/fluxcd/source-controller:v1.9.6', 'registry.example/fluxcd/kustomize-controller:v1.9.6', 'ghcr.io/fluxcd/helm-controller']);
    const pinned = [
      { ref: 'ghcr.io/fluxcd/source-controller:v1.9.6', role: 'Flux' },
      { ref: 'ghcr.io/fluxcd/helm-controller', role: 'Flux' },
    ];
    expect(checkImages([c], pinned).map((x) => [x.severity, x.reason.split(' (')[0]])).toEqual([
      ['warning', 'image ghcr.io/fluxcd/source-controller:v1.9.6'],
      ['error', 'image registry.example/fluxcd/kustomize-controller:v1.9.6 is not one the inventory pins'],
      ['error', 'image ghcr.io/fluxcd/helm-controller'],
    ]);
    expect(checkImages([c], pinned)[2].reason).toMatch(/names neither a tag nor a digest/);
  });
});

describe("Helm mode: every controller the chart runs gets the pinned release's tag", () => {
  it('helm- and notification-controller too (the chart would run its own defaults, another Flux release)', async () => {
    const fleet = await loadInventoryFile('inventory/example.yaml');
    expect(fleet.gitops.flux.install?.mode).toBe('helm');
    const all = {
      ...fleet,
      gitops: { ...fleet.gitops, flux: { ...fleet.gitops.flux, controllers: ['source-controller', 'kustomize-controller', 'helm-controller', 'notification-controller'] } },
    } as typeof fleet;
    expect(fluxHelmImages(all)).toEqual([
      'ghcr.io/fluxcd/source-controller:v1.9.6',
      'ghcr.io/fluxcd/kustomize-controller:v1.9.6',
      'ghcr.io/fluxcd/helm-controller:v1.6.5',
      'ghcr.io/fluxcd/notification-controller:v1.9.4',
    ]);
    expect(fluxHelmImages(fleet)).toEqual(['ghcr.io/fluxcd/source-controller:v1.9.6', 'ghcr.io/fluxcd/kustomize-controller:v1.9.6']);
  });
});

describe('the upstream files and the K3s lines they prove', () => {
  it('every upstream CRD file names its source and still hashes to the sha256 its header gives', () => {
    const releases = upstreamReleases();
    expect(releases).toEqual(expect.arrayContaining(['system-upgrade-controller@v0.16.1', 'flux@v2.9.6', 'helm-controller@e1c8c80e']));
    for (const r of releases) {
      const dir = path.join(UPSTREAM_CRDS_DIR, r);
      for (const f of readdirSync(dir)) {
        const { source } = readUpstreamFile(path.join(dir, f));
        expect(source.repository, `${r}/${f}`).toMatch(/^https:\/\/github\.com\//);
        expect(source.sha256).toMatch(/^[0-9a-f]{64}$/);
      }
      expect(crdsOfRelease(r).length, r).toBeGreaterThan(0);
    }
    // an edited byte is refused
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-upstream-'));
    const src = path.join(UPSTREAM_CRDS_DIR, 'flux@v2.9.6', 'kustomize.toolkit.fluxcd.io_kustomizations.yaml');
    writeFileSync(path.join(tmp, 'x.yaml'), readFileSync(src, 'utf8').replace('prune:', 'prunE:'));
    expect(() => readUpstreamFile(path.join(tmp, 'x.yaml'))).toThrow(/the file was edited/);
  });

  it("the K3s lines validate accepts are exactly those the checks can prove: v1.30 (revocation's policy) to the newest API on file", () => {
    const onFile = kubernetesApiMinors().map((m) => Number(m.split('.')[1]));
    expect(KNOWN_K3S_MINORS.last).toBe(Math.max(...onFile));
    const objects = revokedAgentObjects('press-001', 'docker.io/rancher/kubectl:v1.35.6').map((o) => obj('r.yaml', o));
    expect(checkObjects(objects, { minors: [KNOWN_K3S_MINORS.first - 1], crds: [] }).length).toBeGreaterThan(0);
    expect(checkObjects(objects, { minors: [KNOWN_K3S_MINORS.first], crds: [] })).toEqual([]);
    expect(k3sVersionProblem('v1.29.15+k3s1')).toMatch(/revoking an agent applies an admissionregistration\.k8s\.io\/v1 ValidatingAdmissionPolicy/);
    expect(k3sVersionProblem('v1.37.1+k3s1')).toMatch(/no Kubernetes API of v1\.37 is on file/);
  });

  it('validate warns on an end-of-life line and a kubectl out of skew; --strict refuses the end-of-life line', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-eol-'));
    writeFileSync(path.join(tmp, 'fleet.yaml'), readFileSync('inventory/example.yaml', 'utf8').replace('  version: v1.36.5+k3s1\n', '  version: v1.33.4+k3s1\n'));
    const env = { EDGEFORGE_NOW: '1796860800' };
    const r = await runCli(['validate', '-i', 'fleet.yaml', '--json'], { cwd: tmp, env });
    expect(r.code, r.stderr).toBe(0);
    const w = JSON.parse(r.stdout).warnings as string[];
    expect(w).toContainEqual(expect.stringMatching(/^K3s v1\.33\.4\+k3s1: the v1\.33 line reached its upstream end of life on 2026-06-28 .*move to a supported line \(v1\.35, v1\.36\)/));
    expect(w).toContainEqual(expect.stringMatching(/k3s\.upgrade\.kubectl is docker\.io\/rancher\/kubectl:v1\.35\.6 \(Kubernetes 1\.35\) but the .* ring runs v1\.33\.4\+k3s1/));
    const s = await runCli(['validate', '-i', 'fleet.yaml', '--strict'], { cwd: tmp, env });
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/error: K3s v1\.33\.4\+k3s1: the v1\.33 line reached its upstream end of life/);
    const ok = await runCli(['validate', '-i', 'inventory/example.yaml', '--strict'], { env });
    expect(ok.code, ok.stderr).toBe(0);
  });
});
