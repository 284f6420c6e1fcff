// The plan of a fleet on `gitops.transport: oci` describes the OCI path wherever it names the devices' source:
// the summary, what needs a person, the GitOps section, the count-driven decision and theft response. The Git
// fleet's plan keeps the Git words. Built from the example fleet with the transport switched, as test/registry/ does.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';

const example = readFileSync(EXAMPLE, 'utf8');
const ociText = example.replace(
  /^(  knownHosts: .*\n)/m,
  '$1  transport: oci\n  oci: { registry: "registry.acme.example:5000", repository: acme/fleet, caFile: ca.pem, siteCaches: { "kr-south/ulsan-plant-1": "cache.ulsan1.acme.example:5000" } }\n',
);
const load = (t: string) => loadInventoryBytes(Buffer.from(t), EXAMPLE);
const section = (md: string, title: RegExp) => {
  const at = md.search(title);
  const next = md.indexOf('\n## ', at + 1);
  return md.slice(at, next < 0 ? undefined : next);
};

describe('the plan follows gitops.transport', () => {
  const git = renderPlanMarkdown(load(example));
  const fleet = load(ociText);
  const oci = renderPlanMarkdown(fleet);
  const flux = fleet.active.filter((d) => d.cluster.kind !== 'multi-node-agent').length;

  it('OCI: the summary names the registry and the artifact, not the Git URL devices never pull', () => {
    const glance = oci.split('\n').find((l) => l.startsWith('| **GitOps** |'))!;
    expect(glance).toContain(`Flux on ${flux} device(s), pulling their site's OCI artifact \`oci://registry.acme.example:5000/acme/fleet/<region>/<site>\``);
    expect(glance).toContain('through the site cache at 1 site (kr-south/ulsan-plant-1)');
    expect(glance).not.toContain('pulling `ssh://');
    expect(git.split('\n').find((l) => l.startsWith('| **GitOps** |'))).toContain('pulling `ssh://git@git.acme.example/factory/fleet.git`');
    const design = section(oci, /^## The design in ten lines/m);
    expect(design).toContain('from the registry (Flux OCIRepository)');
    expect(design).toContain('registry pull credential');
  });

  it('OCI: what needs a person is the registry, its issuer and site caches, not deploy keys on the Git host', () => {
    const person = section(oci, /^## What needs a person/m);
    expect(person).not.toContain('deploy key(s) on the Git host');
    expect(person).toContain(`\`edgeforge registry config\` writes their configuration with ${flux} per-device pull credential(s)`);
    expect(person).toContain('and 1 site cache(s)');
    expect(section(git, /^## What needs a person/m)).toContain(`Register ${flux} read-only deploy key(s) on the Git host`);
  });

  it('OCI: theft response refuses the pull credential with registry config', () => {
    const theft = section(oci, /^## \d+\. When a device is stolen/m);
    expect(theft).toContain('run `edgeforge registry config` again so the token issuers refuse the device');
    expect(theft).not.toContain('deploy key on the Git host');
    expect(section(git, /^## \d+\. When a device is stolen/m)).toContain("delete the device's read-only deploy key on the Git host");
  });

  it('OCI: the GitOps section and the site-cache decision speak of artifacts and caches', () => {
    const g = section(oci, /^## \d+\. GitOps/m);
    expect(g).toContain('as one OCI artifact per site to the registry `registry.acme.example:5000`');
    expect(g).toContain('tag checks a day at the registry');
    expect(g).not.toContain('full shallow clone for every device');
    expect(oci).toContain('| a cache of the OCI artifacts at the site |');
    expect(oci).not.toContain('| a read-only Git mirror at the site |');
    expect(git).toContain('| a read-only Git mirror at the site |');
  });
});
