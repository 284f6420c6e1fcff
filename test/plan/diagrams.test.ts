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
const fleets: [string, string][] = [
  ['the example fleet', example],
  ['the example fleet with status reporting', example.replace(/^admins:/m, 'status: { broker: "mqtts://mqtt.acme.example:8883", caFile: ca.pem }\nadmins:')],
  ['200 devices, tang', generateInventory(200, { encryption: 'tang', managementSubnet: true })],
  ['2,000 devices', generateInventory(2000)],
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
        expect(topology.includes('"tang"'), 'tang drawn only where used').toBe(tang);
        expect(firstBoot.includes('participant T as site tang')).toBe(tang);
        expect(topology.includes('status broker')).toBe(Boolean(fleet.inventory.status));
        if (fleet.sites.length > 8) expect(topology).toMatch(/"\d+ site\(s\), \d+ devices: /);
        else for (const s of fleet.sites) expect(topology).toContain(`"${s.name}`);
      },
      60_000,
    );
  }
});
