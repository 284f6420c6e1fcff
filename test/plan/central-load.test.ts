// The plan's central load, both transports side by side, derived from the fleet and the tree (no estimate
// typed in): Git clones the whole tree per device per commit, OCI fetches a site's artifact per device only
// when that site changed, once per site through a cache.
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { centralLoad } from '../../scripts/render/plan/central-load.ts';
import { renderPlanJson, renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { renderGitopsScaffold } from '../../scripts/render/gitops/index.ts';
import { siteLayer } from '../../scripts/render/oci/artifact.ts';
import { tarArchive } from '../../scripts/render/oci/tar.ts';
import { runsFlux } from '../../scripts/render/flux/sync.ts';
import { exampleInventoryText, fleetKeys } from '../gitops/fixtures.ts';

const helm = { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' };

describe('central load per transport', () => {
  it('is computed from the tree: git = devices x the gzip of the whole tree per commit; oci = a changed site\'s devices x its artifact, once through its cache', async () => {
    const fleet = loadInventoryBytes(Buffer.from(exampleInventoryText(helm, (t) => t.replace(/^(  knownHosts: .*\n)/m, '$1  transport: oci\n  oci: { registry: "r.example:5000", repository: fleet, caFile: ca.pem, siteCaches: { "eu-central/stuttgart-plant-3": "c.example:5000" } }\n'))), 'inventory/example.yaml');
    const { keys } = await fleetKeys(fleet);
    const tree = renderGitopsScaffold(fleet, keys, {}).map((f) => ({ path: f.path, bytes: f.bytes }));
    const c = centralLoad(fleet, tree);
    const gz = gzipSync(tarArchive(tree), { level: 9 }).length;
    const flux = fleet.active.filter(runsFlux);
    expect(c.treeGzipBytes).toBe(gz);
    expect(c.fluxDevices).toBe(flux.length);
    expect(c.git.fleetWideCommitBytes).toBe(flux.length * gz);
    expect(c.git.oneSiteCommitBytes).toBe(c.git.fleetWideCommitBytes);
    const stuttgart = c.sites.find((s) => s.site === 'eu-central/stuttgart-plant-3')!;
    expect(stuttgart).toMatchObject({ devices: 4, cached: true, artifactBytes: siteLayer(tree, { region: 'eu-central', site: 'stuttgart-plant-3' }).blob.bytes.length });
    expect(c.oci.fleetWideCommitBytes).toBe(c.sites.reduce((n, s) => n + (s.cached ? 1 : s.devices) * s.artifactBytes, 0));
    expect(c.oci.fleetWideCommitBytes).toBeLessThan(c.git.fleetWideCommitBytes);
    expect(c.oci.pollsPerDay).toBe(c.git.pollsPerDay);
    // in the plan: JSON carries the numbers, Markdown the two rows
    expect(JSON.parse(renderPlanJson(fleet, { tree })).centralLoad.oci.fleetWideCommitBytes).toBe(c.oci.fleetWideCommitBytes);
    expect(renderPlanMarkdown(fleet, { tree })).toMatch(/\| git \| [\d,]+ \|.*\n\| oci \| [\d,]+ \|/);
    expect(renderPlanMarkdown(fleet, {})).toMatch(/Central load per transport: not computed/);
  });
});
