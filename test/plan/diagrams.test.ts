// Every diagram of the plan parses with mermaid's own parser (the npm package under jsdom), for the example
// fleet and generated ones, and draws what the fleet has: tang only where a site uses it, a broker only with
// status reporting, sites as classes once there are too many to draw one by one.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { mermaidBlocks, parseMermaid } from '../../scripts/testkit/mermaid.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';

const example = readFileSync(EXAMPLE, 'utf8');
/** the same fleet on the OCI transport, with a site cache at its first site */
const oci = (t: string, cachedSite: string) =>
  t.replace(
    /^(  knownHosts: .*\n)/m,
    `$1  transport: oci\n  oci: { registry: "registry.acme.example:5000", repository: acme/fleet, caFile: ca.pem, siteCaches: { "${cachedSite}": "cache.site.example:5000" } }\n`,
  );
const fleets: [string, string][] = [
  ['the example fleet', example],
  ['the example fleet with status reporting', example.replace(/^admins:/m, 'status: { broker: "mqtts://mqtt.acme.example:8883", caFile: ca.pem }\nadmins:')],
  ['200 devices, tang', generateInventory(200, { encryption: 'tang', managementSubnet: true })],
  ['2,000 devices', generateInventory(2000)],
  ['the example fleet on OCI', oci(example, 'kr-south/ulsan-plant-1')],
  [
    '2,000 devices on OCI, tang, status',
    oci(generateInventory(2000, { encryption: 'tang', managementSubnet: true }), 'kr-south/kr-plant-001').replace(
      /^admins:/m,
      'status: { broker: "mqtts://mqtt.acme.example:8883", caFile: ca.pem }\nadmins:',
    ),
  ],
];

describe('plan diagrams parse with mermaid', () => {
  it('rejects what is not a diagram (the parser is really in use)', async () => {
    await expect(parseMermaid('flowchart LR\n  a[["x"] --> ')).rejects.toThrow(/Parse error/);
    expect(await parseMermaid('sequenceDiagram\n  A->>B: hi')).toBe('sequence');
  });

  for (const [name, text] of fleets) {
    it(
      name,
      async () => {
        const md = renderPlanMarkdown(loadInventoryBytes(Buffer.from(text), 'inv.yaml'));
        const blocks = mermaidBlocks(md);
        expect(blocks).toHaveLength(4);
        const types = [];
        for (const b of blocks) types.push(await parseMermaid(b));
        expect(types).toEqual(['flowchart-v2', 'flowchart-v2', 'sequence', 'flowchart-v2']);
        const [topology, , firstBoot] = blocks;
        const fleet = loadInventoryBytes(Buffer.from(text), 'inv.yaml');
        const tang = fleet.active.some((d) => d.encryption.mode.includes('tang'));
        expect(/"tang( \(one per site\))?"/.test(topology), 'tang drawn only where used').toBe(tang);
        expect(firstBoot.includes('participant T as site tang')).toBe(tang);
        expect(topology.includes('status broker')).toBe(Boolean(fleet.inventory.status));
        // the source follows the transport: the registry (and site caches) for OCI, the Git host for Git
        const onOci = fleet.gitops.transport === 'oci';
        expect(topology.includes('"registry registry.acme.example:5000"')).toBe(onOci);
        expect(topology.includes('Git over SSH')).toBe(!onOci);
        expect(firstBoot.includes(onOci ? 'participant G as registry' : 'participant G as Git host')).toBe(true);
        expect(firstBoot.includes('deploy key')).toBe(!onOci);
        expect(blocks[1].includes('CI: edgeforge publish')).toBe(onOci);
        expect(blocks[3].includes(onOci ? 'edgeforge registry config again' : 'delete its deploy key on the Git host')).toBe(true);
        if (fleet.sites.length > 8) expect(topology).toMatch(/"\d+ site\(s\), \d+ devices: /);
        else for (const s of fleet.sites) expect(topology).toContain(`"${s.name}`);
      },
      60_000,
    );
  }
});
