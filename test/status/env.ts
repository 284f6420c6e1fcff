// The status testbed lives in the testkit (scripts/testkit/status-testbed.ts): bench:status uses it too.
export * from '../../scripts/testkit/status-testbed.ts';
