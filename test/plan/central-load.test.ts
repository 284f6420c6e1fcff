// The plan's central load with the OCI column beside Git's, derived from the fleet and the tree (no estimate
// typed in): OCI fetches a site's artifact per device only when that site changed, once per site through a cache.
import { describe, expect, it } from 'vitest';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { GIT_TRANSPORT, OCI_TRANSPORT, TRANSPORTS, siteArtifactSizes } from '../../scripts/render/plan/load.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { renderGitopsScaffold } from '../../scripts/render/gitops/index.ts';
import { siteLayer } from '../../scripts/render/oci/artifact.ts';
import { exampleInventoryText, fleetKeys } from '../gitops/fixtures.ts';
import { human } from '../../scripts/render/plan/md.ts';

const helm = { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' };

describe('central load: the OCI transport beside Git', () => {
  it("is computed from the tree: a changed site's devices x its artifact, once through its cache; both columns in the plan", async () => {
    const fleet = loadInventoryBytes(
      Buffer.from(
        exampleInventoryText(helm, (t) =>
          t.replace(
            /^(  knownHosts: .*\n)/m,
            '$1  transport: oci\n  oci: { registry: "r.example:5000", repository: fleet, caFile: ca.pem, siteCaches: { "eu-central/stuttgart-plant-3": "c.example:5000" } }\n',
          ),
        ),
      ),
      'inventory/example.yaml',
    );
    const { keys } = await fleetKeys(fleet);
    const tree = renderGitopsScaffold(fleet, keys, {}).map((f) => ({ path: f.path, bytes: f.bytes }));
    const sizes = siteArtifactSizes(fleet, tree);
    expect(sizes.find((s) => s.site === 'eu-central/stuttgart-plant-3')!.bytes).toBe(siteLayer(tree, { region: 'eu-central', site: 'stuttgart-plant-3' }).blob.bytes.length);
    const m = OCI_TRANSPORT.metrics(fleet, { siteArtifacts: sizes });
    // the cached site counts once, the others once per Flux device
    const flux = (id: string) => fleet.sites.find((s) => s.id === id)!.devices.filter((d) => d.status === 'active' && d.cluster.kind !== 'multi-node-agent').length;
    const expected = sizes.reduce((a, s) => a + (s.site === 'eu-central/stuttgart-plant-3' ? 1 : flux(s.site)) * s.bytes, 0);
    expect(JSON.parse(renderPlanJson(fleet, { siteArtifacts: sizes })).load.map((l: { transport: string }) => l.transport)).toEqual(TRANSPORTS.map((t) => t.name));
    expect(m.perCommitCentral.value).toBe(human(expected));
    expect(m.perCommitCentral.basis).toMatch(/once to each of 1 site cache/);
    expect(Number(m.pollsPerDay.value.replace(/,/g, ''))).toBeGreaterThan(0);
    expect(expected).toBeGreaterThan(0);
    const md = renderPlanMarkdown(fleet, { siteArtifacts: sizes });
    expect(md).toContain('OCI artifacts (Flux OCIRepository)');
    // one site's WAN per commit: the cached site one fetch of its artifact, the others their Flux devices' fetches
    const wan = sizes.map((s) => ({ site: s.site, bytes: (s.site === 'eu-central/stuttgart-plant-3' ? 1 : flux(s.site)) * s.bytes }));
    const top = wan.sort((a, b) => b.bytes - a.bytes)[0];
    expect(m.perCommitSiteWan.value).toBe(human(top.bytes));
    expect(m.perCommitSiteWan.basis).toMatch(new RegExp(`^${top.site}: `));
    // and the basis is honest about the cache: one fetch is the floor, distribution 2.8 may read twice on a cold cache
    expect(m.perCommitSiteWan.basis).toMatch(/one fetch per change is the floor: distribution 2\.8 reads a blob from upstream twice on a cold cache/);
    expect(md).toContain("| **bytes over one site's WAN per commit (the site with the most)** |");
    // Git: every device of a site clones the whole tree over its WAN (no mirror in this fleet)
    const measured = { packBytes: 10_000, files: 1, treeBytes: 1, git: 'git version x', from: 'x' };
    const g = GIT_TRANSPORT.metrics(fleet, { treeFetch: measured });
    const most = Math.max(...fleet.sites.map((s) => flux(s.id)));
    expect(g.perCommitSiteWan.value).toBe(human(most * 10_000));
    // what each idle figure counts is said: OCI response bodies only, Git an estimate with the SSH handshake
    expect(m.idlePerDay.basis).toMatch(/HTTP response bodies only .*TLS handshakes and HTTP headers are not counted/);
    expect(g.idlePerDay.basis).toMatch(/an estimate, not measured, that counts the SSH handshake/);
    // without a tree the OCI bytes are said to be not measured, not guessed
    expect(OCI_TRANSPORT.metrics(fleet, {}).perCommitDevice.value).toBe('not measured');
    expect(OCI_TRANSPORT.metrics(fleet, {}).perCommitSiteWan.value).toBe('not measured');
  });
});
