// The status reporter's resource limits. Its on-device paths live with every other on-device path, in
// scripts/device/layout.ts (STATUS_PATHS, STATUS_BUNDLE_DIR).

/**
 * The reporter's memory ceiling (systemd MemoryMax= of edgeforge-status.service), MiB. A slot for the
 * plan's memory budget (yaml-plan owns the budget): the reporter is sh + mosquitto_pub + one `k3s kubectl`
 * call, for a few seconds per period; measured on the ARM64 boot test (docs/status.md).
 */
export const STATUS_REPORTER_MEMORY_MAX_MIB = 128;
