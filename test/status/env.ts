// The status testbed lives with the code (scripts/status/testbed.ts): bench:status uses it too.
export * from '../../scripts/status/testbed.ts';
