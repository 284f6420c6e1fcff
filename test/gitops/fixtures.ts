// Test fixtures made here, never downloaded: a small Flux "release bundle" shaped like the real
// install.yaml (same kinds, names, args, env and volumes that edgeforge filters and patches), real
// OpenPGP keys (openpgp.js) and real OpenSSH deploy keys (ssh-keygen).
import { tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import YAML from 'yaml';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { GitopsPublicKeys, PgpPublic } from '../../scripts/render/gitops/index.ts';
import { runsFlux } from '../../scripts/render/flux/index.ts';
import { readUpstreamFile, UPSTREAM_CRDS_DIR } from '../../scripts/conformance/upstream-crds.ts';
import { FLUX_DEFAULT_VERSION } from '../../scripts/inventory/flux-versions.ts';

const CONTROLLERS = ['source-controller', 'kustomize-controller', 'helm-controller', 'notification-controller'];
const GROUPS: Record<string, [string, string][]> = {
  'source-controller': [
    ['source.toolkit.fluxcd.io', 'gitrepositories'],
    ['source.toolkit.fluxcd.io', 'ocirepositories'],
  ],
  'kustomize-controller': [['kustomize.toolkit.fluxcd.io', 'kustomizations']],
  'helm-controller': [['helm.toolkit.fluxcd.io', 'helmreleases']],
  'notification-controller': [['notification.toolkit.fluxcd.io', 'alerts']],
};

/** The pinned Flux release's own CRDs where edgeforge keeps them (upstream/crds/flux@<version>/), so the stand-in installs what the release does. */
const UPSTREAM_FLUX_CRDS = new Map(
  ['source.toolkit.fluxcd.io_gitrepositories.yaml', 'source.toolkit.fluxcd.io_ocirepositories.yaml', 'kustomize.toolkit.fluxcd.io_kustomizations.yaml'].map((f) => {
    const crd = YAML.parse(readUpstreamFile(path.join(UPSTREAM_CRDS_DIR, `flux@${FLUX_DEFAULT_VERSION}`, f)).body.toString('utf8')) as { metadata: { name: string } };
    return [crd.metadata.name, crd];
  }),
);

export function fakeFluxInstallYaml(version = FLUX_DEFAULT_VERSION): string {
  const labels = { 'app.kubernetes.io/instance': 'flux-system', 'app.kubernetes.io/part-of': 'flux', 'app.kubernetes.io/version': version };
  const docs: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'flux-system', labels } }];
  for (const c of CONTROLLERS) {
    for (const [group, plural] of GROUPS[c]) {
      const upstream = version === FLUX_DEFAULT_VERSION ? UPSTREAM_FLUX_CRDS.get(`${plural}.${group}`) : undefined;
      if (upstream) {
        docs.push(upstream);
        continue;
      }
      docs.push({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${plural}.${group}`, labels },
        spec: {
          group,
          names: { kind: plural, plural },
          scope: 'Namespaced',
          versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', description: 'on' } } }],
        },
      });
    }
  }
  docs.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'cluster-reconciler-flux-system', labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
    subjects: [
      { kind: 'ServiceAccount', name: 'kustomize-controller', namespace: 'flux-system' },
      { kind: 'ServiceAccount', name: 'helm-controller', namespace: 'flux-system' },
    ],
  });
  docs.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'allow-egress', namespace: 'flux-system', labels },
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'], egress: [{}], ingress: [{ from: [{ podSelector: {} }] }] },
  });
  docs.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'allow-webhooks', namespace: 'flux-system', labels },
    spec: { podSelector: { matchLabels: { app: 'notification-controller' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: {} }] }] },
  });
  for (const c of CONTROLLERS) {
    docs.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: c, namespace: 'flux-system', labels } });
    if (c === 'source-controller' || c === 'notification-controller') {
      docs.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: c, namespace: 'flux-system', labels },
        spec: { ports: [{ name: 'http', port: 80, targetPort: 'http' }], selector: { app: c }, type: 'ClusterIP' },
      });
    }
    if (c === 'notification-controller')
      docs.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'webhook-receiver', namespace: 'flux-system', labels },
        spec: { ports: [{ name: 'http', port: 80, targetPort: 'http-webhook' }], selector: { app: c } },
      });
    const args = ['--events-addr=http://notification-controller.flux-system.svc.cluster.local./', '--watch-all-namespaces=true', '--log-level=info', '--log-encoding=json', '--enable-leader-election'];
    if (c === 'source-controller') args.push('--storage-path=/data', '--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.');
    const volumes =
      c === 'source-controller'
        ? [
            { name: 'data', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
          ]
        : [{ name: 'temp', emptyDir: {} }];
    const mounts =
      c === 'source-controller'
        ? [
            { name: 'data', mountPath: '/data' },
            { name: 'tmp', mountPath: '/tmp' },
          ]
        : [{ name: 'temp', mountPath: '/tmp' }];
    docs.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: c, namespace: 'flux-system', labels: { ...labels, 'control-plane': 'controller' } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: c } },
        template: {
          metadata: { labels: { app: c } },
          spec: {
            containers: [
              {
                name: 'manager',
                image: `ghcr.io/fluxcd/${c}:v1.9.6`,
                args,
                env: [
                  { name: 'RUNTIME_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  ...(c === 'source-controller' ? [{ name: 'TUF_ROOT', value: '/tmp/.sigstore' }] : []),
                  { name: 'GOMEMLIMIT', valueFrom: { resourceFieldRef: { containerName: 'manager', resource: 'limits.memory' } } },
                ],
                resources: { limits: { cpu: '1000m', memory: '1Gi' }, requests: { cpu: '50m', memory: '64Mi' } },
                volumeMounts: mounts,
              },
            ],
            priorityClassName: 'system-cluster-critical',
            securityContext: { fsGroup: 1337 },
            serviceAccountName: c,
            volumes,
          },
        },
      },
    });
  }
  return docs.map((d) => `---\n${YAML.stringify(d)}`).join('');
}

export function fakeBundle(version = FLUX_DEFAULT_VERSION): { bytes: Uint8Array; sha256: string } {
  const bytes = Buffer.from(fakeFluxInstallYaml(version), 'utf8');
  return { bytes, sha256: sha256Hex(bytes) };
}

/** The example inventory with a Flux install pinned (the example itself leaves it to the operator). */
export function exampleInventoryText(install: object, mutate?: (text: string) => string): string {
  let text = readFileSync(new URL('../../inventory/example.yaml', import.meta.url), 'utf8');
  text = text.replace(/^  flux:\n(    .*\n)+/m, ''); // the example pins its own: the test's pin replaces it
  text = text.replace(/^(  interval: 5m.*)$/m, `$1\n  flux:\n    version: ${FLUX_DEFAULT_VERSION}\n    install: ${JSON.stringify(install)}`);
  return mutate ? mutate(text) : text;
}

export function exampleFleet(install: object, mutate?: (text: string) => string): Fleet {
  return loadInventoryBytes(Buffer.from(exampleInventoryText(install, mutate)), 'inventory/example.yaml');
}

export function generatedFleet(n: number, install: object): Fleet {
  let text = generateInventory(n);
  text = text.replace(/^  flux: .*\n/m, '');
  text = text.replace(/^(  knownHosts: .*)$/m, `$1\n  flux:\n    version: ${FLUX_DEFAULT_VERSION}\n    install: ${JSON.stringify(install)}`);
  return loadInventoryBytes(Buffer.from(text), `<generated ${n}>`);
}

export async function pgpKey(name: string): Promise<PgpPublic & { privateArmored: string }> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name, email: `${name.replace(/[^a-z0-9]/gi, '')}@example.com` }],
    format: 'armored',
    date: new Date('2020-01-01T00:00:00Z'),
  });
  const k = await openpgp.readKey({ armoredKey: publicKey });
  return { fingerprint: k.getFingerprint().toUpperCase(), publicArmored: publicKey, privateArmored: privateKey };
}

/** Real SOPS keys for every Flux device and site of a fleet, and one admin. */
export async function fleetKeys(fleet: Fleet): Promise<{ keys: GitopsPublicKeys; privates: string[] }> {
  const privates: string[] = [];
  const deviceSops = new Map<string, PgpPublic>();
  const siteSops = new Map<string, PgpPublic>();
  for (const d of fleet.active.filter(runsFlux)) {
    const k = await pgpKey(`device ${d.id}`);
    privates.push(k.privateArmored);
    deviceSops.set(d.id, { fingerprint: k.fingerprint, publicArmored: k.publicArmored });
  }
  for (const s of fleet.sites) {
    const k = await pgpKey(`site ${s.id}`);
    privates.push(k.privateArmored);
    siteSops.set(s.id, { fingerprint: k.fingerprint, publicArmored: k.publicArmored });
  }
  const a = await pgpKey('admin');
  privates.push(a.privateArmored);
  return { keys: { deviceSops, siteSops, admins: [{ fingerprint: a.fingerprint, publicArmored: a.publicArmored, name: 'admin' }] }, privates };
}

export function sshDeployKey(comment: string): { privateKey: string; publicKey: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-ssh-'));
  try {
    execFileSync(tool('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path.join(dir, 'k')]);
    return { privateKey: readFileSync(path.join(dir, 'k'), 'utf8'), publicKey: readFileSync(path.join(dir, 'k.pub'), 'utf8').trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** keys/ as `edgeforge keys init` lays it out, public halves only (what `edgeforge gitops` reads). */
export function writePublicKeys(dir: string, keys: GitopsPublicKeys): void {
  for (const [id, k] of keys.deviceSops) {
    mkdirSync(path.join(dir, 'keys/devices', id), { recursive: true });
    writeFileSync(
      path.join(dir, 'keys/devices', id, 'public.json'),
      JSON.stringify({ format: 'edgeforge-device-keys/1', id, sops: { fingerprint: k.fingerprint, publicKeyArmored: k.publicArmored } }),
    );
  }
  for (const [id, k] of keys.siteSops) {
    mkdirSync(path.join(dir, 'keys/sites', id), { recursive: true });
    writeFileSync(path.join(dir, 'keys/sites', id, 'public.json'), JSON.stringify({ format: 'edgeforge-site-keys/1', id, sops: { fingerprint: k.fingerprint, publicKeyArmored: k.publicArmored } }));
  }
  mkdirSync(path.join(dir, 'keys/admins'), { recursive: true });
  writeFileSync(path.join(dir, 'keys/admins/ops.asc'), keys.admins[0].publicArmored);
}

/** every file under dir (relative path -> text): a tree before and after a command, compared whole */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const n of readdirSync(path.join(dir, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(path.join(dir, r)).isDirectory()) walk(r);
      else out[r] = readFileSync(path.join(dir, r), 'utf8');
    }
  };
  walk('');
  return out;
}
