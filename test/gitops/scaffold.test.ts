// The GitOps repository scaffold: every kustomization renders with the real kubectl kustomize, every
// file parses, .sops.yaml gives each path the right recipients (first match wins), and nothing secret
// ends up in it.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import * as openpgp from 'openpgp';
import { renderGitopsScaffold, sopsRules, isManaged, type ScaffoldFile, type GitopsPublicKeys } from '../../scripts/render/gitops/index.ts';
import { runsFlux } from '../../scripts/render/flux/index.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { exampleFleet, fakeBundle, fleetKeys, generatedFleet } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['gpg', 'kubectl', 'ssh-keygen'], 'test/gitops/scaffold.test.ts');

const run = promisify(execFile);

// kubectl (with kustomize v5) is installed on the project's machines, where CI runs; it is not a Debian
// package of the same vintage (Debian's kubernetes-client is 1.20), so it is not in .ci/packages.txt: the HAVE_TOOLS
// gate above names where to get it.
const bundle = fakeBundle();
const install = { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 };
type Obj = Record<string, any>;
const text = (f: ScaffoldFile) => Buffer.from(f.bytes).toString('utf8');

function writeTree(files: ScaffoldFile[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-gitops-'));
  for (const f of files) {
    mkdirSync(path.dirname(path.join(dir, f.path)), { recursive: true });
    writeFileSync(path.join(dir, f.path), f.bytes);
  }
  return dir;
}

/** kubectl kustomize on every directory holding a kustomization.yaml, two at a time (shared 2-core machine). */
async function kustomizeAll(dir: string, files: ScaffoldFile[]): Promise<Map<string, Obj[]>> {
  const dirs = [...new Set(files.filter((f) => f.path.endsWith('kustomization.yaml')).map((f) => path.posix.dirname(f.path)))].sort();
  const out = new Map<string, Obj[]>();
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < dirs.length) {
      const d = dirs[next++];
      try {
        const { stdout } = await run(tool('kubectl'), ['kustomize', path.join(dir, d)], { maxBuffer: 64 << 20 });
        out.set(
          d,
          YAML.parseAllDocuments(stdout)
            .map((x) => x.toJS())
            .filter(Boolean),
        );
      } catch (e) {
        failures.push(`${d}: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  expect(failures).toEqual([]);
  return out;
}

describe.runIf(HAVE_TOOLS).each([
  ['the example fleet', () => exampleFleet(install)],
  ['a generated fleet (41 devices, 2 sites)', () => generatedFleet(41, install)],
])('scaffold of %s', (_name, makeFleet) => {
  let fleet: Fleet;
  let keys: GitopsPublicKeys;
  let privates: string[];
  let files: ScaffoldFile[];
  let dir: string;
  let rendered: Map<string, Obj[]>;

  beforeAll(async () => {
    fleet = makeFleet();
    ({ keys, privates } = await fleetKeys(fleet));
    files = renderGitopsScaffold(fleet, keys, { bundle: bundle.bytes });
    dir = writeTree(files);
    rendered = await kustomizeAll(dir, files);
  }, 240_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('every kustomization directory renders with kubectl kustomize', () => {
    const kdirs = files.filter((f) => f.path.endsWith('kustomization.yaml')).length;
    expect(rendered.size).toBe(kdirs);
    const flux = fleet.active.filter(runsFlux);
    // overlays per region and site, an entry point, a flux-system and a sops-keys dir per Flux device, join-tokens per multi-node server, the bases,
    // the upgrade controller and one upgrades/ dir of Plans per site with a Flux device
    expect(kdirs).toBe(
      flux.length * 3 +
        flux.filter((d) => d.cluster.kind === 'multi-node-server').length +
        fleet.regions.length +
        fleet.sites.length +
        4 +
        new Set(flux.map((d) => d.profile.ramMiB <= 2048)).size +
        1 +
        new Set(flux.map((d) => d.siteId)).size,
    );
  });

  it('a device entry point renders the bases through its site and region overlays', () => {
    for (const d of fleet.active.filter(runsFlux)) {
      const objs = rendered.get(`clusters/${d.region}/${d.site}/${d.id}`)!;
      expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['Namespace/apps', 'Namespace/edge-system']);
      const flux = rendered.get(`clusters/${d.region}/${d.site}/${d.id}/flux-system`)!;
      const kinds = flux.map((o) => o.kind);
      for (const k of ['Namespace', 'CustomResourceDefinition', 'Deployment', 'GitRepository', 'Kustomization']) expect(kinds).toContain(k);
      const dk = flux.find((o) => o.kind === 'Kustomization' && o.metadata.name === 'device')!;
      expect(dk.spec.path).toBe(`./clusters/${d.region}/${d.site}/${d.id}`);
      // the operator's sync-patch.yaml is applied on top (no-op until someone suspends)
      expect(dk.spec.suspend).toBe(false);
      expect(dk.spec.prune).toBe(true);
    }
  });

  it('suspend for a maintenance window: the operator patch reaches the device Kustomization', async () => {
    const d = fleet.active.filter(runsFlux)[0];
    const patch = path.join(dir, `clusters/${d.region}/${d.site}/${d.id}/flux-system/sync-patch.yaml`);
    writeFileSync(patch, readFileSync(patch, 'utf8').replace('suspend: false', 'suspend: true'));
    const { stdout } = await run(tool('kubectl'), ['kustomize', path.dirname(patch)], { maxBuffer: 64 << 20 });
    const objs = YAML.parseAllDocuments(stdout).map((x) => x.toJS());
    const dk = objs.find((o) => o.kind === 'Kustomization' && o.metadata.name === 'device');
    expect(dk.spec.suspend).toBe(true);
    expect(dk.spec.decryption.secretRef.name).toBe('sops-gpg');
    expect(objs.find((o) => o.kind === 'Kustomization' && o.metadata.name === 'flux-system').spec.suspend).toBeUndefined();
  });

  it('canary sites run apps/canary, the others apps/stable', () => {
    for (const s of fleet.sites) {
      const k = YAML.parse(text(files.find((f) => f.path === `overlays/sites/${s.region}/${s.name}/kustomization.yaml`)!));
      expect(k.resources).toContain(`../../../../apps/${s.canary ? 'canary' : 'stable'}`);
    }
  });

  it('entry points only for devices that run Flux: no agents, no revoked devices', () => {
    const entries = new Set(files.filter((f) => /^clusters\/[^/]+\/[^/]+\/[^/]+\/kustomization\.yaml$/.test(f.path)).map((f) => f.path.split('/')[3]));
    expect([...entries].sort()).toEqual(
      fleet.active
        .filter(runsFlux)
        .map((d) => d.id)
        .sort(),
    );
    for (const d of fleet.devices.filter((x) => !runsFlux(x))) expect(entries.has(d.id)).toBe(false);
  });

  it('every YAML file parses; managed files carry the marker, operator files do not', () => {
    for (const f of files) {
      if (/\.ya?ml$/.test(f.path))
        expect(() =>
          YAML.parseAllDocuments(text(f)).forEach((d) => {
            if (d.errors.length) throw d.errors[0];
          }),
        ).not.toThrow();
      expect(isManaged(f.bytes)).toBe(f.owner === 'edgeforge');
    }
  });

  it('holds no secret material: public keys only', () => {
    const all = files.map(text).join('\n');
    expect(all).not.toMatch(/PRIVATE KEY/);
    expect(all).not.toMatch(/OPENSSH PRIVATE/);
    // no line of any private key's base64 body appears anywhere
    const bodyLines = privates.flatMap((p) => p.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l)));
    expect(bodyLines.length).toBeGreaterThan(10);
    for (const l of bodyLines) expect(all.includes(l)).toBe(false);
  });

  it('public keys in .sops/ still import with gpg and OpenPGP.js, marker and all', async () => {
    const ascs = files.filter((f) => f.path.endsWith('.asc'));
    expect(ascs.length).toBe(keys.admins.length + fleet.sites.filter((s) => s.devices.some(runsFlux)).length + fleet.active.filter(runsFlux).length);
    const one = ascs.find((f) => f.path.startsWith('.sops/devices/'))!;
    const id = path.posix.basename(one.path, '.asc');
    const k = await openpgp.readKey({ armoredKey: text(one) });
    expect(k.getFingerprint().toUpperCase()).toBe(keys.deviceSops.get(id)!.fingerprint);
    const home = mkdtempSync(path.join(os.tmpdir(), 'ef-gpg-'));
    try {
      execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--import', path.join(dir, one.path)], { stdio: 'pipe' });
      const listing = execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--with-colons', '--list-keys'], { encoding: 'utf8' });
      expect(listing).toContain(keys.deviceSops.get(id)!.fingerprint);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('.sops.yaml: the first matching rule gives each path the right recipients', () => {
    const cfg = YAML.parse(text(files.find((f) => f.path === '.sops.yaml')!)) as { creation_rules: { path_regex: string; pgp: string; encrypted_regex: string }[] };
    const recipients = (p: string) =>
      cfg.creation_rules
        .find((r) => new RegExp(r.path_regex).test(p))!
        .pgp.split(',')
        .sort();
    const admin = keys.admins.map((a) => a.fingerprint);
    const d = fleet.active.filter(runsFlux)[0];
    const site = fleet.sites.find((s) => s.id === d.siteId)!;
    const siteDevices = site.devices.filter(runsFlux).map((x) => keys.deviceSops.get(x.id)!.fingerprint);
    expect(recipients(`clusters/${d.region}/${d.site}/${d.id}/secret.yaml`)).toEqual([keys.deviceSops.get(d.id)!.fingerprint, ...admin].sort());
    expect(recipients(`/home/op/repo/clusters/${d.region}/${d.site}/${d.id}/db.sops.yaml`)).toEqual([keys.deviceSops.get(d.id)!.fingerprint, ...admin].sort());
    expect(recipients(`overlays/sites/${d.region}/${d.site}/secret.yaml`)).toEqual([keys.siteSops.get(site.id)!.fingerprint, ...siteDevices, ...admin].sort());
    const regionSites = fleet.sites.filter((s) => s.region === d.region).map((s) => keys.siteSops.get(s.id)!.fingerprint);
    expect(recipients(`overlays/regions/${d.region}/secret.yaml`)).toEqual([...regionSites, ...admin].sort());
    expect(recipients('apps/base/secret.yaml')).toEqual([...fleet.sites.map((s) => keys.siteSops.get(s.id)!.fingerprint), ...admin].sort());
    expect(cfg.creation_rules.every((r) => r.encrypted_regex === '^(data|stringData)$')).toBe(true);
    // most specific first: every device rule before every site rule before every region rule; catch-all last
    const scopes = sopsRules(fleet, keys).map((r) => r.scope.split(' ')[0]);
    expect(scopes.join(',')).toMatch(/^(device,)+(site,)+(region,)+the$/);
    // a device's rule never matches a sibling whose id it prefixes
    expect(new RegExp(cfg.creation_rules[0].path_regex).test(`clusters/${d.region}/${d.site}/${d.id}x/s.yaml`)).toBe(false);
  });

  it('is deterministic', async () => {
    const again = renderGitopsScaffold(fleet, keys, { bundle: bundle.bytes });
    expect(again.map((f) => [f.path, text(f)])).toEqual(files.map((f) => [f.path, text(f)]));
  });
});

it.runIf(HAVE_TOOLS)('refuses to scaffold without the SOPS keys, naming what is missing', async () => {
  const fleet = exampleFleet(install);
  const { keys } = await fleetKeys(fleet);
  keys.deviceSops.delete('brno1-dock-002');
  expect(() => renderGitopsScaffold(fleet, keys, { bundle: bundle.bytes })).toThrow(/brno1-dock-002.*keys init/);
});
