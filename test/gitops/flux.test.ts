// The flux-bootstrap artifact: controller manifests from a pinned bundle (checked by sha256) or a
// HelmChart, patched for 2 GB boards; the Secrets; the GitRepository and Kustomizations.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll } from 'vitest';
import YAML from 'yaml';
import { renderFluxBootstrap, fluxComponents, FLUX_BOOTSTRAP_FILES, fluxGitUrl, pinnedKnownHosts, fluxSizing, gitopsSourceProblems } from '../../scripts/render/flux/index.ts';
import { GOMEMLIMIT_FRACTION } from '../../scripts/render/flux/sizing.ts';
import { renderGitopsScaffold } from '../../scripts/render/gitops/index.ts';
import { FluxConfigError } from '../../scripts/util/errors.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { exampleFleet, fakeBundle, fleetKeys, pgpKey, sshDeployKey } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['ssh-keygen'], 'test/gitops/flux.test.ts');

type Obj = Record<string, any>;
const docs = (bytes: Uint8Array): Obj[] =>
  YAML.parseAllDocuments(Buffer.from(bytes).toString('utf8'))
    .map((d) => d.toJS())
    .filter(Boolean);
const b64d = (s: string) => Buffer.from(s, 'base64').toString('utf8');

const bundle = fakeBundle();
const bundleInstall = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };
let fleet: Fleet;
let secrets: { deployKeyPrivate: string; deployKeyPublic: string; sopsPrivateArmored: string; siteSopsPrivateArmored: string };
const dev = (id: string): ResolvedDevice => fleet.devices.find((d) => d.id === id)!;

beforeAll(async () => {
  fleet = exampleFleet(bundleInstall);
  const ssh = sshDeployKey('flux ulsan1-line1-001');
  secrets = {
    deployKeyPrivate: ssh.privateKey,
    deployKeyPublic: ssh.publicKey,
    sopsPrivateArmored: (await pgpKey('dev')).privateArmored,
    siteSopsPrivateArmored: (await pgpKey('site')).privateArmored,
  };
});

describe.runIf(HAVE_TOOLS)('controller manifests from a pinned bundle', () => {
  it('keeps only source-controller and kustomize-controller, patched for a 2 GB board', () => {
    const objs = fluxComponents(fleet, 'small', { bundle: bundle.bytes }) as Obj[];
    const deployments = objs.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['kustomize-controller', 'source-controller']);
    // nothing of the controllers we do not run: their CRDs, Services, ServiceAccounts, webhook policy
    const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names.filter((n) => /helm|notification|webhook/.test(n))).toEqual([]);
    expect(names).toContain('CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io');
    expect(names).toContain('CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io');
    expect(names).toContain('NetworkPolicy/allow-egress');

    const sz = fluxSizing('small');
    for (const d of deployments) {
      const s = d.metadata.name === 'source-controller' ? sz.source : sz.kustomize;
      const c = d.spec.template.spec.containers[0];
      expect(d.spec.strategy).toEqual({ type: 'Recreate' });
      expect(c.resources).toEqual({ requests: { cpu: s.cpuRequest, memory: `${s.memoryRequestMi}Mi` }, limits: { cpu: s.cpuLimit, memory: `${s.memoryLimitMi}Mi` } });
      // GOMEMLIMIT replaced (the bundle derived it from the 1Gi limit), not duplicated
      expect(c.env.filter((e: Obj) => e.name === 'GOMEMLIMIT')).toEqual([{ name: 'GOMEMLIMIT', value: `${s.goMemLimitMi}MiB` }]);
      expect(c.args).toContain('--enable-leader-election=false');
      expect(c.args).not.toContain('--enable-leader-election');
      expect(c.args.some((a: string) => a.startsWith('--events-addr'))).toBe(false);
      expect(c.args).toContain(`--concurrent=${s.concurrent}`);
    }
    // GOMEMLIMIT is 90% of the memory limit (headroom for non-heap memory), never the request (the GC would run all the time)
    for (const s of [sz.source, sz.kustomize]) {
      expect(s.goMemLimitMi).toBe(Math.floor(s.memoryLimitMi * GOMEMLIMIT_FRACTION));
      expect(s.goMemLimitMi).toBeGreaterThan(s.memoryRequestMi);
    }
    expect(deployments.find((d) => d.metadata.name === 'kustomize-controller')!.spec.template.spec.containers[0].args).toContain('--requeue-dependency=30s');
  });

  it('stores artifacts on a local-path PVC so an offline reboot keeps the last revision', () => {
    const objs = fluxComponents(fleet, 'standard', { bundle: bundle.bytes }) as Obj[];
    const pvc = objs.find((o) => o.kind === 'PersistentVolumeClaim')!;
    expect(pvc.spec.storageClassName).toBe('local-path');
    const src = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'source-controller')!;
    const data = src.spec.template.spec.volumes.find((v: Obj) => v.name === 'data');
    expect(data).toEqual({ name: 'data', persistentVolumeClaim: { claimName: pvc.metadata.name } });
    expect(src.spec.template.spec.volumes.find((v: Obj) => v.name === 'tmp')).toEqual({ name: 'tmp', emptyDir: {} });
    // PVC right after the namespace it lives in
    expect(objs.findIndex((o) => o.kind === 'PersistentVolumeClaim')).toBe(objs.findIndex((o) => o.kind === 'Namespace') + 1);
    // deleting these from Git must never delete Flux from the fleet
    for (const o of objs.filter((x) => x.kind === 'Namespace' || x.kind === 'CustomResourceDefinition')) expect(o.metadata.annotations['kustomize.toolkit.fluxcd.io/prune']).toBe('disabled');
  });

  it('uses a hostPath pinned to the server when the fleet disables local-storage', () => {
    const f = exampleFleet(bundleInstall, (t) => t.replace('disable: [traefik, servicelb, metrics-server]', 'disable: [traefik, servicelb, metrics-server, local-storage]'));
    const objs = fluxComponents(f, 'small', { bundle: bundle.bytes }) as Obj[];
    expect(objs.some((o) => o.kind === 'PersistentVolumeClaim')).toBe(false);
    const pod = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'source-controller')!.spec.template.spec;
    expect(pod.volumes.find((v: Obj) => v.name === 'data').hostPath.path).toMatch(/^\/var\/lib\/rancher\/k3s\//);
    expect(pod.nodeSelector).toEqual({ 'node-role.kubernetes.io/control-plane': 'true' });
  });

  it('refuses a bundle whose sha256 is not the pinned one, saying what to do', () => {
    const tampered = Buffer.concat([Buffer.from(bundle.bytes), Buffer.from('\n# edited\n')]);
    let err: Error | undefined;
    try {
      fluxComponents(fleet, 'small', { bundle: tampered });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(FluxConfigError);
    expect(err!.message).toContain('bundles/flux/install.yaml');
    expect(err!.message).toContain(bundle.sha256);
    expect(err!.message).toMatch(/update the pin|restore it/);
    expect(() => fluxComponents(fleet, 'small', {})).toThrow(/not read/);
  });

  it('refuses a bundle of another Flux release than the inventory says', () => {
    const other = fakeBundle('v2.3.0');
    const f = exampleFleet({ ...bundleInstall, sha256: other.sha256 });
    expect(() => fluxComponents(f, 'small', { bundle: other.bytes })).toThrow(/Flux v2\.3\.0.*v2\.9\.6/);
  });

  it('refuses to guess when no install is pinned (nothing is downloaded at build time)', () => {
    const f = exampleFleet(bundleInstall, (t) => t.replace(/^    install: .*\n/m, ''));
    expect(() => fluxComponents(f, 'small')).toThrow(/gitops\.flux\.install is not set/);
  });

  it('online: a K3s HelmChart with the pinned chart version', () => {
    const f = exampleFleet({ mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' });
    const [chart] = fluxComponents(f, 'small') as Obj[];
    expect(chart.apiVersion).toBe('helm.cattle.io/v1');
    expect(chart.kind).toBe('HelmChart');
    expect(chart.metadata.namespace).toBe('kube-system');
    expect(chart.spec).toMatchObject({ chart: 'flux2', version: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts', targetNamespace: 'flux-system' });
    const values = YAML.parse(chart.spec.valuesContent);
    expect(values.helmController.create).toBe(false);
    expect(values.notificationController.create).toBe(false);
    expect(values.sourceController.extraEnv).toContainEqual({ name: 'GOMEMLIMIT', value: '115MiB' }); // 90% of the 128Mi limit;
    expect(values.sourceController.container.additionalArgs).toContain('--storage-path=/data-persistent');
    expect(values.extraObjects[0].kind).toBe('PersistentVolumeClaim');
    // the controllers run the pinned release's tags whatever the chart of its line ships (inventory/flux-versions.ts)
    expect(values.sourceController.tag).toBe('v1.9.6');
    expect(values.kustomizeController.tag).toBe('v1.9.6');
    const oci = exampleFleet({ mode: 'helm', chartVersion: '2.19.0', repo: 'oci://ghcr.io/fluxcd-community/charts' });
    const [c2] = fluxComponents(oci, 'small') as Obj[];
    expect(c2.spec.chart).toBe('oci://ghcr.io/fluxcd-community/charts/flux2');
    expect(c2.spec.repo).toBeUndefined();
  });
});

describe.runIf(HAVE_TOOLS)('renderFluxBootstrap', () => {
  it('renders the three auto-deploy files; only the secrets file is secret (0600)', () => {
    const files = renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, secrets, { bundle: bundle.bytes });
    expect(files.map((f) => f.path)).toEqual(FLUX_BOOTSTRAP_FILES.map((n) => `flux/${n}`));
    for (const f of files) {
      expect(f.kind).toBe('flux-bootstrap');
      expect(docs(f.bytes).length).toBeGreaterThan(0);
      // K3s derives an AddOn name from the file name: a DNS-1123 name
      expect(f.path.split('/')[1].replace(/\.yaml$/, '')).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    const secret = files.find((f) => f.path.endsWith('secrets.yaml'))!;
    expect(secret).toMatchObject({ secret: true, mode: 0o600 });
    for (const f of files.filter((x) => x !== secret)) {
      expect(f).toMatchObject({ secret: false, mode: 0o644 });
      expect(Buffer.from(f.bytes).toString()).not.toMatch(/PRIVATE KEY/);
    }
  });

  it('the flux-system Secret holds the deploy key and known_hosts pinned exactly from the inventory', () => {
    const files = renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, secrets, { bundle: bundle.bytes });
    const objs = docs(files[1].bytes);
    const git = objs.find((o) => o.metadata.name === 'flux-system')!;
    expect(git.kind).toBe('Secret');
    expect(git.metadata.namespace).toBe('flux-system');
    expect(b64d(git.data.identity)).toBe(secrets.deployKeyPrivate.endsWith('\n') ? secrets.deployKeyPrivate : secrets.deployKeyPrivate + '\n');
    expect(b64d(git.data['identity.pub']).trim()).toBe(secrets.deployKeyPublic);
    expect(b64d(git.data.known_hosts)).toBe(fleet.inventory.gitops.knownHosts + '\n');
    expect(b64d(git.data.known_hosts)).toBe('git.acme.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFz0tXm8/8UzjaFRl6pAc13aaNDRzRIZzLUlIs6mitf\n');
    const sops = objs.find((o) => o.metadata.name === 'sops-gpg')!;
    const keys = Object.keys(sops.data);
    expect(keys).toEqual(['device-ulsan1-line1-001.asc', 'site-kr-south-ulsan-plant-1.asc']);
    for (const k of keys) expect(b64d(sops.data[k])).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
  });

  it('GitRepository and Kustomizations: URL, branch, jittered interval, prune/wait/timeouts, SOPS', () => {
    const files = renderFluxBootstrap(dev('stuttgart3-asm-001'), fleet, secrets, { bundle: bundle.bytes });
    const [repo, self, keys, controller, upgrades, device] = docs(files[2].bytes);
    expect(repo).toMatchObject({
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      spec: { url: 'ssh://git@git.acme.example/factory/fleet.git', ref: { branch: 'main' }, secretRef: { name: 'flux-system' } },
    });
    expect(repo.spec.interval).toMatch(/^5m(\d+s)?$/);
    expect(repo.spec.ignore).toContain('!/clusters/eu-central/stuttgart-plant-3/');
    expect(self).toMatchObject({ kind: 'Kustomization', metadata: { name: 'flux-system' }, spec: { path: './clusters/eu-central/stuttgart-plant-3/stuttgart3-asm-001/flux-system', prune: true } });
    // the device's SOPS keys from Git: its own key decrypts them, never pruned, applied before `device`
    expect(keys).toMatchObject({
      kind: 'Kustomization',
      metadata: { name: 'sops-keys' },
      spec: {
        path: './clusters/eu-central/stuttgart-plant-3/stuttgart3-asm-001/sops-keys',
        prune: false,
        dependsOn: [{ name: 'flux-system' }],
        decryption: { provider: 'sops', secretRef: { name: 'sops-gpg' } },
      },
    });
    // the K3s upgrade controller (waited for: it registers the Plan CRD itself), then the site's Plans
    expect(controller).toMatchObject({
      kind: 'Kustomization',
      metadata: { name: 'system-upgrade' },
      spec: { path: './infrastructure/system-upgrade', prune: true, wait: true, dependsOn: [{ name: 'flux-system' }] },
    });
    expect(upgrades).toMatchObject({
      kind: 'Kustomization',
      metadata: { name: 'upgrades' },
      spec: { path: './upgrades/eu-central/stuttgart-plant-3', prune: true, dependsOn: [{ name: 'system-upgrade' }] },
    });
    expect(repo.spec.ignore).toContain('!/upgrades/eu-central/stuttgart-plant-3/');
    expect(device).toMatchObject({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      spec: {
        path: './clusters/eu-central/stuttgart-plant-3/stuttgart3-asm-001',
        prune: true,
        wait: true,
        timeout: '10m',
        retryInterval: '2m',
        decryption: { provider: 'sops', secretRef: { name: 'sops-gpg' } },
        dependsOn: [{ name: 'flux-system' }, { name: 'sops-keys' }],
        sourceRef: { kind: 'GitRepository', name: 'flux-system' },
      },
    });
    expect(device.spec.postBuild.substitute.DEVICE_ID).toBe('stuttgart3-asm-001');
  });

  it('is deterministic and sized by the board: 2 GB vs 4 GB', () => {
    const a = renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, secrets, { bundle: bundle.bytes });
    const b = renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, secrets, { bundle: bundle.bytes });
    expect(a.map((f) => Buffer.from(f.bytes).toString())).toEqual(b.map((f) => Buffer.from(f.bytes).toString()));
    const big = renderFluxBootstrap(dev('ulsan1-line2-001'), fleet, secrets, { bundle: bundle.bytes }); // rpi4-4g
    const lim = (fs: typeof a) => docs(fs[0].bytes).find((o) => o.kind === 'Deployment' && o.metadata.name === 'kustomize-controller')!.spec.template.spec.containers[0].resources.limits.memory;
    expect(lim(a)).toBe('192Mi');
    expect(lim(big)).toBe('384Mi');
  });

  it('agents get nothing (Flux runs on their site server); revoked devices neither', () => {
    expect(renderFluxBootstrap(dev('changwon2-press-001'), fleet, secrets, { bundle: bundle.bytes })).toEqual([]);
    expect(renderFluxBootstrap(dev('changwon2-server'), fleet, secrets, { bundle: bundle.bytes })).toHaveLength(3);
  });

  it('refuses swapped or malformed secrets', () => {
    expect(() => renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, { ...secrets, deployKeyPrivate: secrets.deployKeyPublic }, { bundle: bundle.bytes })).toThrow(/deployKeyPrivate/);
    expect(() => renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, { ...secrets, sopsPrivateArmored: 'x' }, { bundle: bundle.bytes })).toThrow(/sopsPrivateArmored/);
  });

  it('the bootstrap components equal what Git holds for the device, so the hand-over changes nothing', async () => {
    const { keys } = await fleetKeys(fleet);
    const scaffold = renderGitopsScaffold(fleet, keys, { bundle: bundle.bytes });
    const git = scaffold.find((f) => f.path === 'infrastructure/flux-system/small/components.yaml')!;
    const boot = renderFluxBootstrap(dev('ulsan1-line1-001'), fleet, secrets, { bundle: bundle.bytes });
    expect(docs(git.bytes)).toEqual(docs(boot[0].bytes));
    const sync = scaffold.find((f) => f.path === 'clusters/kr-south/ulsan-plant-1/ulsan1-line1-001/flux-system/gotk-sync.yaml')!;
    expect(docs(sync.bytes)).toEqual(docs(boot[2].bytes));
  });
});

describe.runIf(HAVE_TOOLS)('Git URL and host key', () => {
  it('turns scp-like URLs into the ssh:// form Flux needs', () => {
    expect(fluxGitUrl('git@github.com:acme/fleet.git')).toBe('ssh://git@github.com/acme/fleet.git');
    expect(fluxGitUrl('ssh://git@git.acme.example:2222/fleet.git')).toBe('ssh://git@git.acme.example:2222/fleet.git');
  });

  it('refuses a known_hosts line for another host, and expects [host]:port for a non-22 port', () => {
    const g = (url: string, knownHosts: string) => pinnedKnownHosts({ gitops: { ...fleet.gitops, url, knownHosts } });
    expect(() => g('ssh://git@other.example/x.git', fleet.gitops.knownHosts)).toThrow(/other\.example/);
    expect(g('ssh://git@git.acme.example:2222/x.git', '[git.acme.example]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFz0tXm8/8UzjaFRl6pAc13aaNDRzRIZzLUlIs6mitf')).toMatch(
      /^\[git\.acme\.example\]:2222 /,
    );
    expect(() => g('ssh://git@git.acme.example:2222/x.git', fleet.gitops.knownHosts)).toThrow(/\[git\.acme\.example\]:2222/);
  });
});

describe.runIf(HAVE_TOOLS)('a read-only Git mirror per site', () => {
  const MIRROR_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9u/Jy1N3N4jyA9HABcdi17Gpm7F1NmG3o544SYLIfl';
  const withMirror = (site: string, host: string) =>
    exampleFleet(bundleInstall, (t) => t.replace(/^(  interval: 5m.*)$/m, `$1\n  mirrors:\n    ${site}: { url: "ssh://git@${host}/fleet.git", knownHosts: "git.ulsan1.acme.example ${MIRROR_KEY}" }`));

  it("devices of a mirrored site pull from the mirror, with the mirror's pinned key; other sites from the centre", () => {
    const f = withMirror('kr-south/ulsan-plant-1', 'git.ulsan1.acme.example');
    expect(gitopsSourceProblems(f)).toEqual([]);
    const at = (id: string) =>
      renderFluxBootstrap(
        f.devices.find((d) => d.id === id)!,
        f,
        secrets,
        { bundle: bundle.bytes },
      );
    const ulsan = at('ulsan1-line1-001');
    expect(docs(ulsan[2].bytes)[0].spec.url).toBe('ssh://git@git.ulsan1.acme.example/fleet.git');
    expect(b64d(docs(ulsan[1].bytes)[0].data.known_hosts)).toBe(`git.ulsan1.acme.example ${MIRROR_KEY}\n`);
    const brno = at('brno1-dock-001');
    expect(docs(brno[2].bytes)[0].spec.url).toBe('ssh://git@git.acme.example/factory/fleet.git');
    expect(b64d(docs(brno[1].bytes)[0].data.known_hosts)).toBe(f.gitops.knownHosts + '\n');
  });

  it('reports a mirror for a site that does not exist, or whose key names another host', () => {
    expect(gitopsSourceProblems(withMirror('kr-south/no-such-plant', 'git.ulsan1.acme.example')).join('\n')).toMatch(/no-such-plant.*no such site/);
    expect(gitopsSourceProblems(withMirror('kr-south/ulsan-plant-1', 'mirror.elsewhere.example')).join('\n')).toMatch(
      /gitops\.mirrors\["kr-south\/ulsan-plant-1"\]\.knownHosts names "git\.ulsan1\.acme\.example"/,
    );
  });
});
