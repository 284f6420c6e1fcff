// `plan`'s outbound table (the operator's firewall request), checked against what the build renders for the
// same devices: the mirror endpoint of registries.yaml, K3s's `server:` for agents, the install URL in the
// first-boot program, the GitRepository URL Flux pulls, the status broker; and what must NOT be there:
// public registries behind a mirror K3s may not fall back from, anything on the internet in an airgap fleet.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { planData, renderPlanJson, renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { siteEgress } from '../../scripts/render/plan/egress.ts';
import { fluxSyncObjects } from '../../scripts/render/flux/sync.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { readFileSync } from 'node:fs';
import { airgapInventory, entry, KC, SC } from '../inventory/airgap-fixture.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'inv.yaml');
const files = (fleet: Fleet, id: string) =>
  new Map(
    renderDevice(
      fleet,
      fleet.active.find((d) => d.id === id)!,
      fixedSecretsFor(fleet.active.find((d) => d.id === id)!),
    ).map((f) => [f.path, Buffer.from(f.bytes).toString('utf8')]),
  );
const hosts = (fleet: Fleet, site: string) =>
  siteEgress(
    fleet.sites.find((s) => s.id === site)!,
    fleet,
  );

describe('plan: outbound hosts per site, derived from what the devices are rendered with', () => {
  const fleet = load(example);

  it('every site lists its tang servers, NTP, DNS, the install URL and the Git host its Flux pulls', () => {
    for (const s of fleet.sites) {
      const rows = hosts(fleet, s.id);
      for (const d of s.devices.filter((x) => x.status === 'active')) {
        const f = files(fleet, d.id);
        const prog = f.get('bundle/firstboot.sh')!;
        const url = /^EF_K3S_INSTALL_URL='([^']+)'/m.exec(prog)![1];
        expect(
          rows.some((r) => r.host === new URL(url).hostname && r.when === 'first boot'),
          `${s.id}: install URL ${url}`,
        ).toBe(true);
        if (d.encryption.mode.includes('tang'))
          for (const t of d.encryption.tang)
            expect(
              rows.some((r) => r.host === new URL(t.url).hostname),
              `${s.id}: tang ${t.url}`,
            ).toBe(true);
        for (const n of d.ntp) expect(rows.some((r) => r.host === n && r.port === '123/udp')).toBe(true);
        if (d.network.mode === 'static') for (const n of d.network.dns) expect(rows.some((r) => r.host === n && r.port.startsWith('53/'))).toBe(true);
        const cfg = YAML.parse(f.get('bundle/k3s/config.yaml')!) as Record<string, unknown>;
        if (cfg.server) {
          const u = new URL(String(cfg.server));
          expect(rows.find((r) => r.host === u.hostname && r.port === `${u.port}/tcp`)?.devices ?? [d.id]).toContain(d.id);
        } else {
          const repo = fluxSyncObjects(d, fleet).find((o) => o.kind === 'GitRepository') as { spec: { url: string } };
          const u = new URL(repo.spec.url);
          expect(
            rows.some((r) => r.host === u.hostname && r.port === `${u.port || 22}/tcp` && r.when === 'after first boot'),
            `${d.id}: Git ${repo.spec.url}`,
          ).toBe(true);
        }
      }
    }
  });

  it('a site with a mirror K3s may not fall back from: the mirror, and no public registry for what it mirrors', () => {
    const site = fleet.sites.find((s) => s.devices.some((d) => d.registryMirror))!;
    const d = site.devices[0];
    const f = files(fleet, d.id);
    const reg = YAML.parse(f.get('bundle/k3s/registries.yaml')!) as { mirrors: Record<string, { endpoint: string[] }> };
    const cfg = YAML.parse(f.get('bundle/k3s/config.yaml')!) as Record<string, unknown>;
    expect(cfg['disable-default-registry-endpoint']).toBe(true);
    const rows = hosts(fleet, site.id);
    const ep = new URL(Object.values(reg.mirrors)[0].endpoint[0]);
    expect(rows.some((r) => r.host === ep.hostname && r.port === `${ep.port}/tcp` && r.when === 'first boot and after')).toBe(true);
    for (const r of Object.keys(reg.mirrors)) expect(rows.filter((x) => x.why.startsWith(`registry ${r}:`))).toEqual([]);
    // a site without a mirror pulls K3s's packaged components from docker.io itself
    const other = fleet.sites.find((s) => !s.devices.some((x) => x.registryMirror))!;
    expect(hosts(fleet, other.id).some((r) => r.why.startsWith('registry docker.io:'))).toBe(true);
    expect(YAML.parse(files(fleet, other.devices[0].id).get('bundle/k3s/config.yaml')!)['disable-default-registry-endpoint']).toBeUndefined();
  });

  it('an airgap fleet with Flux as a bundle and its image archives: nothing on the internet at any site', () => {
    const air = load(airgapInventory(entry(SC, 'bundles/flux/sc.tar', 'a'.repeat(64)) + entry(KC, 'bundles/flux/kc.tar', 'b'.repeat(64))));
    for (const s of air.sites) {
      const rows = hosts(air, s.id);
      expect(
        rows.filter((r) => /github|docker|ghcr|registry /.test(`${r.host} ${r.why}`) && !r.why.startsWith('site registry mirror')),
        s.id,
      ).toEqual([]);
      expect(rows.filter((r) => r.when === 'first boot')).toEqual([]);
    }
    expect(renderPlanMarkdown(air)).toMatch(/K3s install airgap: K3s, its images and the pinned image archives come from the disk image, nothing from the internet/);
  });

  it('the status broker when the inventory names one; the JSON carries the same rows', () => {
    const withStatus = load(example + '\nstatus:\n  broker: mqtts://mqtt.acme.example:8884\n  caFile: ca.pem\n');
    for (const s of withStatus.sites) expect(hosts(withStatus, s.id).some((r) => r.host === 'mqtt.acme.example' && r.port === '8884/tcp')).toBe(true);
    expect(hosts(fleet, fleet.sites[0].id).some((r) => /status broker/.test(r.why))).toBe(false);
    const json = JSON.parse(renderPlanJson(withStatus)) as { sites: { id: string; egress: unknown[] }[] };
    expect(json.sites.map((s) => s.egress)).toEqual(planData(withStatus).sites.map((s) => s.egress));
  });
});

describe('validate: a site mirror that leaves out a registry its devices pull from', () => {
  it('warns naming the site and the registry; the example (mirror lists docker.io, ghcr.io, registry.k8s.io) does not', async () => {
    const { mirrorGaps } = await import('../../scripts/render/plan/egress.ts');
    expect(mirrorGaps(load(example))).toEqual([]);
    const narrow = load(example.replace('registries: [docker.io, ghcr.io, registry.k8s.io]', 'registries: [docker.io]'));
    expect(mirrorGaps(narrow)).toEqual([
      expect.stringMatching(/^site kr-south\/ulsan-plant-1 has a registry mirror, but its devices also pull from ghcr\.io, which registryMirror\.registries does not list/),
    ]);
  });
});

describe('plan: the K3s section names the image archives an airgap install delivers', () => {
  it('each pinned archive, by image and component, from the fleet-wide list', () => {
    const air = loadInventoryBytes(Buffer.from(airgapInventory(entry(SC, 'bundles/flux/sc.tar', 'a'.repeat(64)) + entry(KC, 'bundles/flux/kc.tar', 'b'.repeat(64)))), 'inv.yaml');
    expect(planData(air).k3s.imageArchives).toEqual(air.imageArchives.map((a) => ({ component: a.component, image: a.image, file: a.name })));
    expect(renderPlanMarkdown(air)).toContain(`2 pinned container image archive(s) placed where K3s imports them at start: \`${SC}\` (flux), \`${KC}\` (flux)`);
    expect(planData(loadInventoryBytes(Buffer.from(example), 'inv.yaml')).k3s.imageArchives).toEqual([]);
  });
});

describe('plan: an online fleet with Flux pinned as a bundle lists the registries the bundle pulls from', () => {
  it("read from the bundle by `edgeforge plan` (ghcr.io for Flux's controllers); without the bundle it says what it could not list", async () => {
    const { mkdtempSync, mkdirSync, rmSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { runCli } = await import('../helpers.ts');
    const { exampleInventoryText, fakeBundle } = await import('../gitops/fixtures.ts');
    const bundle = fakeBundle();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-plan-flux-bundle-'));
    try {
      // the stuttgart site has no registry mirror: its devices pull Flux's images from ghcr.io itself
      writeFileSync(path.join(dir, 'fleet.yaml'), exampleInventoryText({ mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 }));
      const site = 'eu-central/stuttgart-plant-3';
      const egress = async () => {
        const r = await runCli(['plan', '--json', '-i', 'fleet.yaml'], { cwd: dir });
        expect(r.code, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { sites: { id: string; egress: { host: string; why: string }[] }[] }).sites.find((s) => s.id === site)!.egress;
      };
      const unread = await egress();
      expect(unread.some((r) => r.host === '(the registries bundles/flux/install.yaml names)' && /the bundle was not read here/.test(r.why))).toBe(true);
      expect(unread.some((r) => r.host === 'ghcr.io')).toBe(false);
      mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
      writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), bundle.bytes);
      const read = await egress();
      for (const host of ['ghcr.io', 'pkg-containers.githubusercontent.com']) {
        expect(read.find((r) => r.host === host)?.why).toBe("registry ghcr.io: Flux's controller images (source-controller, kustomize-controller)"); // the controllers this fleet runs
      }
      expect(read.some((r) => r.host.startsWith('(the registries'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
