// Where edgeforge puts things ON THE DEVICE: one home for every on-device path and name. TypeScript imports the
// constants; the programs that run on the device get them as shell variables in their generated header
// (layoutShellHeader), so no path is ever typed twice. Ground floor: imports nothing above util/.
import { shq } from '../util/shell.ts';

/** edgeforge's own state: applied.json, step markers, tmp/ (created 0700 by the first-boot program) */
export const STATE_DIR = '/var/lib/edgeforge';
/** the delivered bundle (build output devices/<id>/bundle/); seed, disk image and `provision` all put it here */
export const BUNDLE_DIR = `${STATE_DIR}/bundle`;
/** the first-boot program; an operator re-runs it by hand with `sudo sh FIRSTBOOT_PROGRAM` */
export const FIRSTBOOT_PROGRAM = `${BUNDLE_DIR}/firstboot.sh`;
/** what the device applied (bundle hash, K3s version, steps), written last by the first-boot program */
export const APPLIED_FILE = `${STATE_DIR}/applied.json`;
/** K3s tokens and other secrets the running system keeps (on the encrypted data volume when there is one) */
export const SECRETS_DIR = `${STATE_DIR}/secrets`;
/** the Flux hand-over's state (handed-over marker) */
export const FLUX_STATE_DIR = `${STATE_DIR}/flux`;
/** the first-boot program's own log (besides stderr / cloud-init-output.log) */
export const FIRSTBOOT_LOG = '/var/log/edgeforge-firstboot.log';
/** RAM-only state: unsealed secrets, the recovery key file while it is needed, the data volume's status */
export const RUN_DIR = '/run/edgeforge';
/** `provision` uploads into a fresh directory with this prefix, then moves it to BUNDLE_DIR */
export const STAGING_PREFIX = '/var/tmp/edgeforge-bundle-';

/** edgeforge's configuration files on the device */
export const CONFIG_DIR = '/etc/edgeforge';
/** the firewall rules (table inet edgeforge), loaded at boot by edgeforge-nftables.service */
export const NFTABLES_FILE = `${CONFIG_DIR}/nftables.nft`;

const SBIN = '/usr/local/sbin';
const UNIT_DIR = '/etc/systemd/system';

/**
 * A periodic job: its program and the service and timer units that run it. The bundle carries the three files
 * under their device names (basename), and the shell core's install_timer_job puts them in place.
 */
export function timerJob(program: string, unit: string) {
  return { program: `${SBIN}/${program}`, service: `${UNIT_DIR}/${unit}.service`, timer: `${UNIT_DIR}/${unit}.timer` } as const;
}

/** The name a device path has in the bundle: its last component. */
export const bundleName = (devicePath: string) => devicePath.slice(devicePath.lastIndexOf('/') + 1);

/**
 * The first-boot service: a systemd unit that runs the first-boot program until it has finished,
 * across reboots; the program journals each finished step and writes one status file (STATUS_PATHS.firstbootState).
 */
export const FIRSTBOOT = {
  /** the systemd unit the seed enables (runcmd only starts it) */
  unit: 'edgeforge-firstboot.service',
  /** the device command: `edgeforge-firstboot status` (also run, service, retry); runs FIRSTBOOT_PROGRAM */
  command: `${SBIN}/edgeforge-firstboot`,
  /** one file per finished step, holding the bundle hash it finished for (written, fsync'ed, renamed) */
  journalDir: `${STATE_DIR}/firstboot`,
  /**
   * TEST ONLY: "BASE CAP" seconds replacing the retry backoff's 30 s .. 900 s (the e2e boot test writes it
   * to shorten its waits; a device in the field never has it). EDGEFORGE_BACKOFF="BASE CAP" does the same.
   */
  backoffTestFile: `${CONFIG_DIR}/firstboot-backoff.test`,
  /** exit status of a permanent failure (die_permanent): the unit does not restart it, provision says so */
  exitPermanent: 78,
} as const;

/** K3s's state directory (kept on the encrypted data volume) */
export const K3S_STATE_DIR = '/var/lib/rancher';
/** where K3s imports image archives at start (and, from v1.31.5, while running) */
export const K3S_IMAGES_DIR = `${K3S_STATE_DIR}/k3s/agent/images`;
/** K3s's auto-deploy directory: K3s applies every manifest in it at each start (the Flux bootstrap goes here) */
export const K3S_MANIFESTS_DIR = `${K3S_STATE_DIR}/k3s/server/manifests`;
/** K3s's airgap files, named as its releases name them: in the bundle's k3s/airgap/ and on the fleet base's K3s partition */
export const K3S_AIRGAP = { binary: 'k3s-arm64', images: 'k3s-airgap-images-arm64.tar.zst', installScript: 'install.sh' } as const;
/**
 * Where one release's airgap files sit on the fleet base's K3s partition: the stable ring's at its root (as on
 * every card since the partition exists), the canary ring's during a rollout in a directory named after its
 * release (v1.32.3+k3s1 -> v1.32.3-k3s1/), so one image carries both and each device takes its ring's.
 */
export function k3sAirgapReleaseDir(version: string): string {
  return version.replace('+', '-');
}

/**
 * The Flux hand-over (docs/gitops.md): a program and its timer, retried until Flux reconciles itself from Git;
 * then it writes the marker and K3s no longer re-applies the bootstrap files.
 */
export const FLUX_HANDOVER = {
  ...timerJob('edgeforge-flux-handover', 'edgeforge-flux-handover'),
  /** the marker (holding the Git revision Flux took over at), in FLUX_STATE_DIR */
  handedOver: `${FLUX_STATE_DIR}/handed-over`,
} as const;

/** The LUKS2 data volume (disk encryption): where K3s state and the secrets live on an encrypted device. */
export const DATA_VOLUME = {
  /** device-mapper name and LUKS label: /dev/mapper/edgeforge-data */
  name: 'edgeforge-data',
  /** where the opened volume is mounted */
  mount: '/var/lib/edgeforge-data',
  /**
   * Directories that live on the encrypted volume, bind-mounted from a subdirectory of it. Not all of
   * STATE_DIR: the bundle, the unlock program's state and the first-boot log must be readable before the
   * volume is unlocked (degraded mode).
   */
  binds: [
    { path: K3S_STATE_DIR, sub: 'rancher' },
    { path: SECRETS_DIR, sub: 'edgeforge-secrets' },
  ] as readonly { path: string; sub: string }[],
  /** written by the first-boot program, read at every boot by the unlock program */
  conf: `${CONFIG_DIR}/data-volume.conf`,
  /** "locked since ..." while the unlock program retries */
  status: `${RUN_DIR}/data-volume.status`,
  /** the program that opens the volume at boot (clevis, retried with backoff), and its systemd unit */
  unlockProgram: `${SBIN}/edgeforge-unlock-data`,
  unlockUnit: 'edgeforge-data-unlock.service',
} as const;

/** The fleet-status reporter (docs/status.md). Its shell programs (scripts/render/status/sh/) still carry these
 *  as defaults of their own; test/status/reporter.test.ts checks that they agree. */
export const STATUS_PATHS = {
  /** settings, CA and credential; 0700 (the credential is 0600): on the root filesystem, outside the encrypted volume */
  etcDir: `${CONFIG_DIR}/status`,
  conf: `${CONFIG_DIR}/status/status.conf`,
  ca: `${CONFIG_DIR}/status/ca.pem`,
  /** mosquitto_pub's options file ($XDG_CONFIG_HOME/mosquitto_pub): `-u DEVICE` and `-P PASSWORD` lines */
  credential: `${CONFIG_DIR}/status/mosquitto_pub`,
  ...timerJob('edgeforge-status-report', 'edgeforge-status'),
  /** written by the first-boot program at each milestone (step=, state=, at=, error= lines) */
  firstbootState: `${STATE_DIR}/firstboot.state`,
  /** the last report sent, the lock, the reporter's last peak memory */
  workDir: `${STATE_DIR}/status`,
  /** read: what the unlock service writes while the data volume is locked (scripts/render/encryption/sh/) */
  dataVolumeStatus: DATA_VOLUME.status,
} as const;
/** Where the bundle keeps the status files: BUNDLE_DIR/STATUS_BUNDLE_DIR/<name>. */
export const STATUS_BUNDLE_DIR = 'status';

/** The K3s certificate-renewal check (docs/day2.md): a oneshot program and a timer inside the
 *  site's maintenance window; it restarts K3s when a leaf certificate is close to expiry. */
export const CERT_RENEWAL = {
  ...timerJob('edgeforge-cert-renewal', 'edgeforge-cert-renewal'),
  /** its own log (besides the journal) */
  log: '/var/log/edgeforge-cert-renewal.log',
  /** the last check's result (checked=, soonest=, restarted=, at= lines) */
  state: `${STATE_DIR}/cert-renewal.state`,
  /** where K3s keeps its certificates, under K3S_STATE_DIR: a server's and every node's */
  certDirs: ['k3s/server/tls', 'k3s/agent'],
} as const;
/** Where the bundle keeps the renewal files: BUNDLE_DIR/RENEWAL_BUNDLE_DIR/<name>. */
export const RENEWAL_BUNDLE_DIR = 'renewal';

/**
 * OS updates in A/B slots (docs/os-updates.md). RAUC writes the next OS into the slot that is not running; the
 * boot loader (GRUB on UEFI, the firmware's tryboot on a Raspberry Pi) tries it once; edgeforge's health check
 * marks it good, or the old slot boots again. What must survive the switch lives on the shared boot partition
 * (this file's sharedMount) or on the data volume, or is carried from the running root into the new one.
 */
export const OS_UPDATE = {
  /** the partition both slots share (UEFI: the ESP; Raspberry Pi: the boot-select partition with autoboot.txt), mounted here at every boot */
  sharedMount: '/boot/edgeforge',
  sharedMountUnit: 'boot-edgeforge.mount',
  /** how a device finds that partition: the ESP by its GPT name, the Raspberry Pi's boot-select partition by its FAT label */
  sharedGptName: 'edgeforge-esp',
  sharedFatLabel: 'EFSHARED',
  /** on it, written when the card was made: the layout's facts (slot devices, GRUB's environment file) as KEY='value' lines */
  layoutRel: 'edgeforge/os-layout',
  /**
   * on it: which slot holds which release, the trial in progress, the last rollback — as two records
   * (`os-state.0`, `os-state.1`) of key='value' lines, each with a sequence number and a checksum, of a fixed size
   * and overwritten in place, the older one each time: FAT has no journal and a rename on it is not atomic (a power
   * cut between its steps empties the file), while a torn in-place write only spoils the record being written
   */
  stateRel: 'edgeforge/os-state',
  stateRecordBytes: 4096,
  stateKeys: ['A_VERSION', 'B_VERSION', 'TRIAL', 'TRIAL_VERSION', 'TRIAL_AT', 'TRIAL_STAGE', 'ROLLBACK_VERSION', 'ROLLBACK_AT', 'ROLLBACK_REASON', 'ROLLBACK_COUNT', 'GOOD_AT', 'NOTE'],
  /** the Raspberry Pi firmware's autoboot.txt is one sector, padded with comment lines and overwritten in place */
  autobootBytes: 512,
  /** RAUC's central slot status (bundle version and install time per slot) */
  raucStatusRel: 'edgeforge/rauc.status',
  raucConf: '/etc/rauc/system.conf',
  /** the fleet's OS-update certificate: RAUC verifies bundles and the updater ring pointers against it */
  keyring: '/etc/rauc/keyring.pem',
  /** this device's settings: layout, ring, where bundles come from, its window */
  conf: `${CONFIG_DIR}/os-update.conf`,
  /** the updater, run by its timer inside the site's maintenance window */
  ...timerJob('edgeforge-os-update', 'edgeforge-os-update'),
  /** the health check after every boot: marks a trial slot good, or bad and reboots into the old one */
  healthProgram: `${SBIN}/edgeforge-os-health`,
  healthService: `${UNIT_DIR}/edgeforge-os-health.service`,
  /** Raspberry Pi: RAUC's custom boot-loader backend (autoboot.txt and tryboot) */
  tryboot: `${SBIN}/edgeforge-tryboot`,
  /** systemd's hardware-watchdog setting: a trial boot that hangs is reset by the board and falls back like a failed one */
  watchdogConf: '/etc/systemd/system.conf.d/10-edgeforge-watchdog.conf',
  /** downloads (on the data volume: a root slot has no room for the next one) */
  downloadDir: `${DATA_VOLUME.mount}/os-update`,
  /** where an operator puts a ring pointer and its bundle for a device without a route to the source */
  inboxDir: `${DATA_VOLUME.mount}/os-inbox`,
  log: '/var/log/edgeforge-os-update.log',
  /** the updater's own state on the running root (the last ring pointer accepted) */
  workDir: `${STATE_DIR}/os-update`,
  /** GPT partition names of the UEFI layout's root slots (RAUC finds them by /dev/disk/by-partlabel/) */
  gptRootNames: ['edgeforge-root-a', 'edgeforge-root-b'],
  /** slot boot names: RAUC's bootname, GRUB's variables, rauc.slot= on the kernel command line */
  slotNames: ['A', 'B'],
} as const;
/** Where the bundle keeps the OS-update files: BUNDLE_DIR/OS_BUNDLE_DIR/<name>. */
export const OS_BUNDLE_DIR = 'os';

/**
 * What a root-slot switch carries from the running root into the new one: everything first boot, cloud-init and
 * the K3s installer put on the root that the device needs to stay itself (checked against a first-boot run in
 * test/os/carry.test.ts). `file` and `dir` are copied over the new slot's; `accounts` keeps the new slot's
 * lines and adds the users the running root has that it lacks; `units` copies the systemd units (and their
 * enablement links) whose names start with one of the listed prefixes; `replace` removes the new slot's files matching
 * the pattern and copies the running root's. K3s's state and the secrets are not
 * here: they live on the data volume.
 */
export const OS_CARRY: readonly { path: string; how: 'file' | 'dir' | 'accounts' | 'units' | 'replace'; why: string; names?: readonly string[] }[] = [
  { path: '/etc/machine-id', how: 'file', why: 'the journal and the DHCP client id follow it' },
  { path: '/etc/hostname', how: 'file', why: 'first boot: identity' },
  { path: '/etc/hosts', how: 'file', why: 'first boot: identity' },
  { path: '/etc/passwd', how: 'accounts', why: 'the users first boot and cloud-init created' },
  { path: '/etc/shadow', how: 'accounts', why: "their locked passwords (and root's)" },
  { path: '/etc/group', how: 'accounts', why: 'their groups' },
  { path: '/etc/gshadow', how: 'accounts', why: 'their groups' },
  { path: '/home', how: 'dir', why: 'authorized_keys of the users' },
  { path: '/root/.ssh', how: 'dir', why: "cloud-init's disable_root stub" },
  { path: '/etc/sudoers.d', how: 'dir', why: 'first boot and cloud-init: sudo for the users' },
  { path: '/etc/ssh/ssh_host_*', how: 'replace', why: "the pinned host key, and no other (first boot removed the image's)" },
  { path: '/etc/ssh/sshd_config.d', how: 'dir', why: 'key-only SSH' },
  { path: '/etc/sysctl.d/90-edgeforge-k3s.conf', how: 'file', why: "K3s's protect-kernel-defaults" },
  { path: '/etc/modules-load.d/edgeforge.conf', how: 'file', why: 'WireGuard for flannel' },
  { path: CONFIG_DIR, how: 'dir', why: "the firewall, the data volume's settings, status and OS-update settings" },
  { path: '/etc/rancher', how: 'dir', why: "K3s's configuration" },
  { path: '/etc/rauc', how: 'dir', why: "RAUC's configuration and keyring" },
  { path: OS_UPDATE.watchdogConf, how: 'file', why: 'the hardware watchdog: a hung trial boot is reset and falls back' },
  { path: UNIT_DIR, how: 'units', names: ['edgeforge-', 'k3s', 'boot-edgeforge.mount', 'rauc.service.d'], why: 'the units first boot and the K3s installer wrote, and their enablement' },
  { path: '/etc/fstab', how: 'file', why: "the base's mounts (the root line is pointed at the new slot)" },
  { path: '/etc/crypttab', how: 'file', why: "the data volume's note" },
  { path: '/etc/network/interfaces.d', how: 'dir', why: "cloud-init's network configuration (ifupdown)" },
  { path: '/etc/netplan', how: 'dir', why: "cloud-init's network configuration (netplan)" },
  { path: '/etc/timezone', how: 'file', why: 'cloud-init: timezone' },
  { path: '/etc/localtime', how: 'file', why: 'cloud-init: timezone' },
  { path: '/etc/systemd/timesyncd.conf.d', how: 'dir', why: 'cloud-init: NTP servers' },
  { path: '/usr/local', how: 'dir', why: "K3s (and what its upgrades installed) and edgeforge's device programs" },
  { path: STATE_DIR, how: 'dir', why: 'the bundle, the first-boot journal, applied.json' },
  { path: '/var/lib/cloud', how: 'dir', why: "cloud-init's instance: the next boot is not a new instance (which would delete the host keys)" },
];

/** The NoCloud seed: the FAT volume label cloud-init looks for, and where copies of the seed may sit. */
export const SEED_LABEL = 'CIDATA';
/**
 * Where cloud-init (or the image) keeps copies of the seed, erased after first boot because they hold
 * one-time secrets. Ubuntu raspi images read the seed from the "system-boot" partition at /boot/firmware.
 */
export const SEED_DIRS = ['/var/lib/cloud/seed/nocloud', '/var/lib/cloud/seed/nocloud-net', '/boot/firmware'] as const;

/** The layout as shell variables (name, value), in the order the header lists them. Lists are space-separated. */
export function layoutShellVariables(): [string, string][] {
  return [
    ['EF_STATE_DIR', STATE_DIR],
    ['EF_BUNDLE_DIR', BUNDLE_DIR],
    ['EF_APPLIED_FILE', APPLIED_FILE],
    ['EF_SECRETS_DIR', SECRETS_DIR],
    ['EF_FLUX_STATE_DIR', FLUX_STATE_DIR],
    ['EF_LOG_FILE', FIRSTBOOT_LOG],
    ['EF_RUN_DIR', RUN_DIR],
    ['EF_STAGING_PREFIX', STAGING_PREFIX],
    ['EF_NFTABLES_FILE', NFTABLES_FILE],
    ['EF_DATA_NAME', DATA_VOLUME.name],
    ['EF_DATA_MOUNT', DATA_VOLUME.mount],
    // "mount point:subdirectory of the volume" pairs
    ['EF_DATA_BINDS', DATA_VOLUME.binds.map((b) => `${b.path}:${b.sub}`).join(' ')],
    ['EF_DATA_CONF', DATA_VOLUME.conf],
    ['EF_DATA_STATUS', DATA_VOLUME.status],
    ['EF_DATA_UNLOCK_PROGRAM', DATA_VOLUME.unlockProgram],
    ['EF_DATA_UNLOCK_UNIT', DATA_VOLUME.unlockUnit],
    ['EF_SEED_LABEL', SEED_LABEL],
    ['EF_K3S_STATE_DIR', K3S_STATE_DIR],
    ['EF_K3S_IMAGES_DIR', K3S_IMAGES_DIR],
    ['EF_K3S_AIRGAP_BINARY', K3S_AIRGAP.binary],
    ['EF_K3S_AIRGAP_IMAGES', K3S_AIRGAP.images],
    ['EF_K3S_AIRGAP_SCRIPT', K3S_AIRGAP.installScript],
    ['EF_STATUS_DIR', STATUS_PATHS.etcDir],
    ['EF_STATUS_CONF', STATUS_PATHS.conf],
    ['EF_STATUS_PROGRAM', STATUS_PATHS.program],
    ['EF_STATUS_SERVICE', STATUS_PATHS.service],
    ['EF_STATUS_TIMER', STATUS_PATHS.timer],
    ['EF_STATUS_STATE', STATUS_PATHS.firstbootState],
    ['EF_STATUS_WORK', STATUS_PATHS.workDir],
    ['EF_SEED_DIRS', SEED_DIRS.join(' ')],
    ['EF_FIRSTBOOT_UNIT', FIRSTBOOT.unit],
    ['EF_FIRSTBOOT_COMMAND', FIRSTBOOT.command],
    ['EF_FIRSTBOOT_JOURNAL', FIRSTBOOT.journalDir],
    ['EF_FIRSTBOOT_BACKOFF_TEST', FIRSTBOOT.backoffTestFile],
    ['EF_EXIT_PERMANENT', String(FIRSTBOOT.exitPermanent)],
    ['EF_RENEWAL_PROGRAM', CERT_RENEWAL.program],
    ['EF_RENEWAL_SERVICE', CERT_RENEWAL.service],
    ['EF_RENEWAL_TIMER', CERT_RENEWAL.timer],
    ['EF_RENEWAL_STATE', CERT_RENEWAL.state],
    ['EF_RENEWAL_CERT_DIRS', CERT_RENEWAL.certDirs.join(' ')],
    ['EF_OS_SHARED', OS_UPDATE.sharedMount],
    ['EF_OS_SHARED_UNIT', OS_UPDATE.sharedMountUnit],
    ['EF_OS_STATE', `${OS_UPDATE.sharedMount}/${OS_UPDATE.stateRel}`],
    ['EF_OS_STATE_BYTES', String(OS_UPDATE.stateRecordBytes)],
    ['EF_OS_STATE_KEYS', OS_UPDATE.stateKeys.join(' ')],
    ['EF_OS_AUTOBOOT_BYTES', String(OS_UPDATE.autobootBytes)],
    ['EF_OS_LAYOUT', `${OS_UPDATE.sharedMount}/${OS_UPDATE.layoutRel}`],
    ['EF_OS_RAUC_STATUS', `${OS_UPDATE.sharedMount}/${OS_UPDATE.raucStatusRel}`],
    ['EF_OS_RAUC_CONF', OS_UPDATE.raucConf],
    ['EF_OS_KEYRING', OS_UPDATE.keyring],
    ['EF_OS_CONF', OS_UPDATE.conf],
    ['EF_OS_PROGRAM', OS_UPDATE.program],
    ['EF_OS_SERVICE', OS_UPDATE.service],
    ['EF_OS_TIMER', OS_UPDATE.timer],
    ['EF_OS_HEALTH_PROGRAM', OS_UPDATE.healthProgram],
    ['EF_OS_HEALTH_SERVICE', OS_UPDATE.healthService],
    ['EF_OS_TRYBOOT', OS_UPDATE.tryboot],
    ['EF_OS_WATCHDOG_CONF', OS_UPDATE.watchdogConf],
    ['EF_OS_DOWNLOAD', OS_UPDATE.downloadDir],
    ['EF_OS_INBOX', OS_UPDATE.inboxDir],
    ['EF_OS_LOG', OS_UPDATE.log],
    ['EF_OS_WORK', OS_UPDATE.workDir],
    // "how:path[:prefix,prefix]" entries (OS_CARRY)
    ['EF_OS_CARRY', OS_CARRY.map((c) => `${c.how}:${c.path}${c.names ? `:${c.names.join(',')}` : ''}`).join(' ')],
  ];
}

const VARIABLES = layoutShellVariables();
const READS = /\$\{?(EF_[A-Z0-9_]+)/g;
// the layout names each source text reads; sources are few and long-lived (the checked-in .sh files, a
// fleet's fragments), so each is scanned once per process, not once per device
const readsOf = new Map<string, Set<string>>();

/**
 * `NAME='value'` lines for the layout variables that `sources` (the shell text that follows the header)
 * read, so each program carries only what it uses (shellcheck flags a variable nobody reads).
 */
export function layoutShellHeader(...sources: string[]): string[] {
  const used = new Set<string>();
  for (const s of sources) {
    let names = readsOf.get(s);
    if (!names) {
      names = new Set([...s.matchAll(READS)].map((m) => m[1]));
      if (readsOf.size < 256) readsOf.set(s, names);
    }
    for (const n of names) used.add(n);
  }
  return VARIABLES.filter(([name]) => used.has(name)).map(([name, value]) => `${name}=${shq(value)}`);
}
