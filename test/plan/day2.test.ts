// The plan's Day 2 section is derived: the rings and windows are the resolved fleet's, the Plan
// YAML is the rendered Plan, and an airgap fleet is told exactly which images to stage before promoting.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { renderPlanMarkdown, renderPlanJson } from '../../scripts/render/plan/plan.ts';
import { renderPlanAppendix } from '../../scripts/render/plan/appendix.ts';
import { sitePlans } from '../../scripts/render/day2/plans.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
const load = (t: string) => loadInventoryBytes(Buffer.from(t), 'x.yaml');
const section = (md: string) => md.slice(md.search(/## \d+\. Day 2/));
const airgap = (t: string) =>
  t.replace(
    /^    mode: online\n    installScriptSha256: .*\n/m,
    `    mode: airgap\n    bundle: bundles/k3s\n    sha256: { binary: "${'1'.repeat(64)}", images: "${'2'.repeat(64)}", installScript: "${'3'.repeat(64)}" }\n`,
  );

describe('plan: Day 2', () => {
  it("shows the rings, every site's window and where it came from, and the real YAML of one Plan", () => {
    const fleet = load(example);
    const md = section(renderPlanMarkdown(fleet));
    expect(md).toContain('| canary | v1.36.5+k3s1 | kr-south/ulsan-plant-1 | 4 |');
    // per site in the appendix; the plan groups sites with the same window, source and ring
    const ap = renderPlanAppendix(fleet);
    for (const s of fleet.sites) expect(ap).toMatch(new RegExp(`\\| ${s.id}( \\(canary\\))? \\|.*\\| every day 05:30-06:30 ${s.window.timeZone} \\(industry manufacturing\\) \\|`));
    expect(md).toContain('| every day 05:30-06:30 | Asia/Seoul | industry manufacturing | canary | kr-south/ulsan-plant-1 |');
    expect(md).toContain(
      '| every day 05:30-06:30 | Asia/Seoul, Europe/Berlin | industry manufacturing | stable | kr-south/changwon-plant-2, eu-central/stuttgart-plant-3, eu-central/brno-warehouse-1 |',
    );
    const block = /One Plan as rendered \(`([^`]+)`\):\n\n```yaml\n([\s\S]*?)```/.exec(md)!;
    const site = fleet.sites.find((s) => block[1] === `upgrades/${s.region}/${s.name}/plans.yaml`)!;
    expect(YAML.parse(block[2])).toEqual(sitePlans(site, fleet).at(-1));
    expect(md).toContain('edgeforge rollout promote');
    expect(md).toMatch(/fewer than 90 days left/);
    // what expires, with dates: the K3s line's end of life (kubernetes.io/releases), the join tokens' renewal
    expect(md).toContain('K3s v1.36.5+k3s1 (the v1.36 line): upstream end of life 2027-06-28');
    expect(md).toContain('it rewrites one with fewer than 15 days left');
    const json = JSON.parse(renderPlanJson(fleet));
    expect(json.day2.rings.map((r: { ring: string }) => r.ring)).toEqual(['canary', 'stable']);
  });

  it("airgap, rollout in progress: lists the images to stage in each stable site's mirror before promoting, and the sites without one", () => {
    // the canary release's airgap files (k3s.install.canary): validate refuses an airgap rollout without them
    const canaryFiles = `    canary: { bundle: bundles/k3s-v1.36.5, sha256: { binary: "${'4'.repeat(64)}", images: "${'5'.repeat(64)}", installScript: "${'3'.repeat(64)}" } }\n`;
    const rolled = airgap(example).replace('  version: v1.36.5+k3s1\n', '  version: v1.35.6+k3s1\n  canaryVersion: v1.36.5+k3s1\n');
    expect(() => load(rolled)).toThrow(expect.objectContaining({ problems: [expect.objectContaining({ message: expect.stringMatching(/add k3s\.install\.canary/) })] }));
    const fleet = load(rolled.replace(/(    sha256: \{ binary: "1+"[^\n]*\n)/, `$1${canaryFiles}`));
    const md = section(renderPlanMarkdown(fleet));
    expect(md).toContain('A rollout is in progress: the canary ring runs v1.36.5+k3s1, the stable ring stays on v1.35.6+k3s1');
    expect(md).toContain(
      'Before `edgeforge rollout promote` (stable ring to v1.36.5+k3s1): `docker.io/rancher/k3s-upgrade:v1.36.5-k3s1` in the mirror of every stable site (kr-south/changwon-plant-2, eu-central/stuttgart-plant-3, eu-central/brno-warehouse-1)',
    );
    // only ulsan has a registryMirror in the example
    expect(md).toContain('Sites without a registry mirror (kr-south/changwon-plant-2, eu-central/stuttgart-plant-3, eu-central/brno-warehouse-1) cannot pull a new k3s-upgrade image');
    // the image-archive mechanism: none pinned here, so the plan names every missing archive (validate warns)
    expect(md).toContain(
      "missing now (validate warns; until they are pinned, a new device's upgrades wait): `docker.io/rancher/system-upgrade-controller:v0.16.1`, `docker.io/rancher/kubectl:v1.35.6`, `docker.io/rancher/k3s-upgrade:v1.36.5-k3s1`, `docker.io/rancher/k3s-upgrade:v1.35.6-k3s1`",
    );
    expect(md).toContain(
      "A new device installs its ring's version, so its seed and its Plans agree from the start — in this airgap fleet from its ring's airgap files on the image's K3s partition: stable v1.35.6+k3s1 (`k3s.install`, at its root); canary v1.36.5+k3s1 (`k3s.install.canary`, directory v1.36.5-k3s1/).",
    );
    expect(md).toContain("Promote moves v1.36.5+k3s1's airgap files from `k3s.install.canary` to `k3s.install`");
    expect(JSON.parse(renderPlanJson(fleet)).day2.airgapReleases).toEqual([
      { ring: 'stable', version: 'v1.35.6+k3s1', key: 'k3s.install', dir: '' },
      { ring: 'canary', version: 'v1.36.5+k3s1', key: 'k3s.install.canary', dir: 'v1.36.5-k3s1' },
    ]);
    for (const img of [
      'docker.io/rancher/system-upgrade-controller:v0.16.1',
      'docker.io/rancher/kubectl:v1.35.6',
      'docker.io/rancher/k3s-upgrade:v1.35.6-k3s1',
      'docker.io/rancher/k3s-upgrade:v1.36.5-k3s1',
    ])
      expect(md).toContain(`| \`${img}\` |`);
  });
});

describe("plan: outbound hosts include the upgrade images' registry", () => {
  it('online: servers pull the controller, kubectl and k3s-upgrade; agents kubectl and k3s-upgrade (from docker.io or the site mirror)', async () => {
    const { siteEgress } = await import('../../scripts/render/plan/egress.ts');
    const fleet = load(example);
    const changwon = siteEgress(
      fleet.sites.find((s) => s.name === 'changwon-plant-2')!,
      fleet,
    ).filter((r) => r.host === 'registry-1.docker.io');
    expect(changwon.find((r) => r.devices?.includes('changwon2-server'))!.why).toContain('K3s upgrades and revocations (system-upgrade-controller, kubectl, k3s-upgrade)');
    expect(changwon.find((r) => r.devices?.includes('changwon2-press-001'))!.why).toContain('K3s upgrades and revocations (kubectl, k3s-upgrade)');
    const ulsan = siteEgress(
      fleet.sites.find((s) => s.name === 'ulsan-plant-1')!,
      fleet,
    );
    expect(ulsan.find((r) => r.why.startsWith('site registry mirror'))!.why).toContain(
      "docker.io: K3s's packaged components (rancher/* images); K3s upgrades and revocations (system-upgrade-controller, kubectl, k3s-upgrade)",
    );
  });
});
