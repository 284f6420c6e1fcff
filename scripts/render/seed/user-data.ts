// NoCloud user-data (#cloud-config): what cloud-init does before the first-boot program runs, and the
// vehicle that carries the device bundle (write_files) on the seed. Checked by `cloud-init schema`.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import type { RenderedFile } from '../files.ts';
import { toYaml, yamlComment, type YamlValue } from '../yaml.ts';
import { BUNDLE_DIR } from '../../device/layout.ts';
import { firstbootRuncmd } from '../firstboot/service.ts';

export interface UserDataInput {
  device: ResolvedDevice;
  fleet: Pick<Fleet, 'name'>;
  /** the pinned host key for cloud-init; absent when it travels sealed (the first-boot program installs it) */
  hostKey?: { privateKey: string; publicKey: string };
  /** files under bundle/ (paths relative to the device dir), written to BUNDLE_DIR; `text` is their content */
  bundle: (RenderedFile & { text?: string })[];
  /** extra files written at absolute paths (e.g. the sysctls, so they hold from the first boot) */
  system: { path: string; text: string; mode: number }[];
}

const octal = (m: number) => '0' + (m & 0o777).toString(8).padStart(3, '0');

export function userDataDoc(u: UserDataInput): { [k: string]: YamlValue | undefined } {
  const d = u.device;
  const writeFiles: YamlValue[] = [
    ...u.system.map((f) => ({ path: f.path, content: f.text, owner: 'root:root', permissions: octal(f.mode) })),
    ...u.bundle.map((f) => ({
      path: `${BUNDLE_DIR}/${f.path.replace(/^bundle\//, '')}`,
      content: f.text ?? Buffer.from(f.bytes).toString('utf8'),
      owner: 'root:root',
      permissions: octal(f.secret ? 0o600 : f.mode),
    })),
  ];
  return {
    hostname: d.id,
    preserve_hostname: false,
    timezone: d.timezone,
    ntp: d.ntp.length ? { enabled: true, servers: d.ntp } : undefined,
    // key-only: no default distribution user, no passwords, no root login
    users: d.users.map((x) => ({
      name: x.name,
      shell: '/bin/bash',
      lock_passwd: true,
      sudo: x.sudo ? 'ALL=(ALL) NOPASSWD:ALL' : undefined,
      ssh_authorized_keys: x.sshAuthorizedKeys,
    })),
    disable_root: true,
    ssh_pwauth: false,
    // the image's own host keys go; the device's pinned pre-generated key is the only one (when it travels
    // sealed, cloud-init makes a stand-in ed25519 key that the first-boot program replaces)
    ssh_deletekeys: true,
    ssh_genkeytypes: ['ed25519'],
    ssh_keys: u.hostKey ? { ed25519_private: u.hostKey.privateKey, ed25519_public: u.hostKey.publicKey } : undefined,
    // an encrypted device keeps the space after root for its LUKS2 data volume: cloud-init must not grow root into it
    growpart: d.encryption.mode !== 'none' ? { mode: 'off' } : undefined,
    resize_rootfs: d.encryption.mode !== 'none' ? false : undefined,
    // no package work at boot: intermittent networks, and the image is the package set
    package_update: false,
    package_upgrade: false,
    write_files: writeFiles,
    // runcmd only enables and starts the first-boot service, which runs the program until it has finished
    runcmd: firstbootRuncmd(),
  };
}

export function renderUserData(u: UserDataInput): string {
  return (
    '#cloud-config\n' +
    yamlComment(
      `${u.device.id} (fleet ${u.fleet.name}) - written by edgeforge. Holds this device's one-time secrets:\nthe first-boot program erases them from the device after use; keep this file private (0600).`,
    ) +
    toYaml(userDataDoc(u))
  );
}
