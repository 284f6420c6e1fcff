// Every on-device path of the status reporter, in one place (until the project's on-device path module
// lands; then these move there). The shell sources repeat the defaults; a test checks they agree.
export const STATUS_PATHS = {
  /** settings, CA and credential; 0700 (the credential is 0600): on the root filesystem, outside the encrypted volume */
  etcDir: '/etc/edgeforge/status',
  conf: '/etc/edgeforge/status/status.conf',
  ca: '/etc/edgeforge/status/ca.pem',
  /** mosquitto_pub's options file ($XDG_CONFIG_HOME/mosquitto_pub): `-u DEVICE` and `-P PASSWORD` lines */
  credential: '/etc/edgeforge/status/mosquitto_pub',
  program: '/usr/local/sbin/edgeforge-status-report',
  service: '/etc/systemd/system/edgeforge-status.service',
  timer: '/etc/systemd/system/edgeforge-status.timer',
  /** written by the first-boot program at each milestone (step=, state=, at=, error= lines) */
  firstbootState: '/var/lib/edgeforge/firstboot.state',
  /** the last report sent, the lock, the reporter's last peak memory */
  workDir: '/var/lib/edgeforge/status',
  /** read: what the unlock service writes while the data volume is locked (scripts/render/encryption/sh/) */
  dataVolumeStatus: '/run/edgeforge/data-volume.status',
} as const;

/** Where the bundle keeps the status files: DEVICE_BUNDLE_DIR/status/<name>. */
export const STATUS_BUNDLE_DIR = 'status';

/**
 * The reporter's memory ceiling (systemd MemoryMax= of edgeforge-status.service), MiB. A slot for the
 * plan's memory budget (yaml-plan owns the budget): the reporter is sh + mosquitto_pub + one `k3s kubectl`
 * call, for a few seconds per period; measured on the ARM64 boot test (docs/status.md).
 */
export const STATUS_REPORTER_MEMORY_MAX_MIB = 128;
