import { defineConfig } from 'vitest/config';

/**
 * Project "unit" (`npm run test:unit`, the loop to run while editing; docs/testing.md): test files that run no
 * external program (no child process, no `requireTools`) and build no big fleet — well under a minute. Every
 * other file is in project "integration". `npm test` (and CI) runs both projects: every file once, as before.
 * test/architecture/unit-project.test.ts keeps this list honest.
 */
export const UNIT_TESTS = [
  'test/architecture/**/*.test.ts',
  'test/guard/self-contained.test.ts',
  'test/cli/exit-status.test.ts',
  'test/cli/next-steps.test.ts',
  'test/conformance/checks.test.ts',
  'test/conformance/plan-window.test.ts',
  'test/disk/units.test.ts',
  'test/inventory/**/*.test.ts',
  'test/lifecycle/replace-build.test.ts',
  'test/os/status.test.ts',
  // test/plan/derived.test.ts is not here: it checks the plan against a 2,000-device fleet's rendered files
  'test/plan/central-load.test.ts',
  'test/plan/day2.test.ts',
  'test/plan/diagrams.test.ts',
  'test/plan/docs.test.ts',
  'test/plan/egress.test.ts',
  'test/plan/memory.test.ts',
  'test/plan/plan.test.ts',
  'test/render/k3s-install-pin.test.ts',
  'test/render/yaml.test.ts',
  'test/ui/reporter.test.ts',
];
const EXCLUDE = ['test/e2e/**', 'node_modules/**', 'dist/**', 'dist.tmp-*/**'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT_TESTS, exclude: EXCLUDE } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...EXCLUDE, ...UNIT_TESTS] } },
    ],
  },
});
