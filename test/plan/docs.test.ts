// The plan documents in docs/ are edgeforge's own output: the example fleet's plan in full and the first page of
// a 2,000-device fleet's (npm run docs:plan), and the line counts docs/plan.md states are the ones measured now.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { PLAN_DOCS, planDocs } from '../../scripts/dev/plan-docs.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { renderPlanMarkdown } from '../../scripts/render/plan/plan.ts';
import { renderPlanAppendix } from '../../scripts/render/plan/appendix.ts';

describe('docs/ plan documents', () => {
  const docs = planDocs();
  for (const [k, file] of Object.entries(PLAN_DOCS)) {
    it(`${file} is current (npm run docs:plan)`, () => {
      expect(readFileSync(file, 'utf8')).toBe(docs[k as keyof typeof PLAN_DOCS]);
    });
  }

  it('docs/plan.md states the line counts measured now', () => {
    const text = readFileSync('docs/plan.md', 'utf8');
    const fleets: [RegExp, Buffer][] = [
      [/\| example \(14 devices, 4 sites\) \| ([\d,]+) lines, (\d+) KB \| ([\d,]+) lines \|/, readFileSync('inventory/example.yaml')],
      [/\| generated, 200 devices \(5 sites\) \| ([\d,]+) lines, (\d+) KB \| ([\d,]+) lines \|/, Buffer.from(generateInventory(200))],
      [/\| generated, 2,000 devices \(50 sites\) \| ([\d,]+) lines, (\d+) KB \| ([\d,]+) lines \|/, Buffer.from(generateInventory(2000))],
    ];
    for (const [re, bytes] of fleets) {
      const m = re.exec(text)!;
      expect(m, String(re)).not.toBeNull();
      const fleet = loadInventoryBytes(bytes, 'f.yaml');
      const md = renderPlanMarkdown(fleet);
      const lines = (s: string) => s.split('\n').length - 1;
      expect(Number(m[1].replace(/,/g, ''))).toBe(lines(md));
      expect(Number(m[2])).toBe(Math.round(Buffer.byteLength(md) / 1000));
      expect(Number(m[3].replace(/,/g, ''))).toBe(lines(renderPlanAppendix(fleet)));
    }
  });
});
