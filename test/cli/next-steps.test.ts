import { describe, expect, it } from 'vitest';
import { nextSteps } from '../../scripts/cli/next-steps.ts';

const defaults = { inventory: 'inventory/example.yaml', out: 'images/out', keys: 'keys' };

describe('what a build says to do next', () => {
  it('names the real output folder and device; repeats only the options that are not the defaults', () => {
    expect(nextSteps(defaults, { id: 'ulsan1-line1-001', hasDisk: true })).toEqual([
      'Next (the build is in images/out/):',
      '  the fleet report:          npx edgeforge plan | less',
      '  check the build:           npx edgeforge verify images/out',
      "  ulsan1-line1-001's image:  npx edgeforge image materialize --device ulsan1-line1-001 --to /tmp/ulsan1-line1-001.img",
      '  or its card:               npx edgeforge flash --device ulsan1-line1-001 --target /dev/sdX --verify',
    ]);
    const other = nextSteps({ inventory: 'inv/acme.yaml', out: '/tmp/my out', keys: 'k' }, { id: 'a-1', hasDisk: false }).join('\n');
    expect(other).toContain('npx edgeforge plan -i inv/acme.yaml | less');
    expect(other).toContain("npx edgeforge verify '/tmp/my out' --keys k");
    expect(other).toContain("npx edgeforge build -i inv/acme.yaml -o '/tmp/my out' --keys k --base-image FILE");
    expect(other).toContain("npx edgeforge flash -i inv/acme.yaml -o '/tmp/my out' --keys k --device a-1 --target /dev/sdX --verify");
  });
  it('without a built device: the report and the check only', () => {
    expect(nextSteps(defaults, undefined)).toHaveLength(3);
  });
});
