// A small fleet with OS updates (inventory os:, docs/os-updates.md) for tests: a canary and a stable site of UEFI
// boxes and a site of Raspberry Pis, every device with an encrypted data volume (tang), online K3s installs.
import { toYaml } from '../render/yaml.ts';

export interface OsFleetOptions {
  name?: string;
  os?: Record<string, unknown>;
  /** more sites under region "eu" */
  piSite?: boolean;
  status?: Record<string, unknown>;
  /** the K3s install script's pin (a test's own stand-in script) */
  installScriptSha256?: string;
}

export function osFleetInventory(o: OsFleetOptions = {}): string {
  const tang = { mode: 'tang', tang: [{ url: 'http://tang.example.com', thumbprint: 'Wq4xRDgyJ3AbzF5cXp8uyqYwV1Q' }] };
  const sites: Record<string, unknown> = {
    'plant-a': {
      canary: true,
      devices: [{ id: 'plant-a-001', serial: 'A001', mac: 'dc:a6:32:10:00:01' }],
    },
    'plant-b': {
      devices: [
        { id: 'plant-b-001', serial: 'B001', mac: 'dc:a6:32:10:00:02' },
        { id: 'plant-b-002', serial: 'B002', mac: 'dc:a6:32:10:00:03' },
      ],
    },
  };
  if (o.piSite) sites['store-c'] = { profile: 'pi4', devices: [{ id: 'store-c-001', serial: 'C001', mac: 'dc:a6:32:10:00:04' }] };
  const inv = {
    version: 1,
    fleet: { name: o.name ?? 'acme', industry: 'manufacturing' },
    profiles: {
      ipc: { board: 'generic-uefi', arch: 'arm64', ramMiB: 4096, storage: { medium: 'emmc', sizeGB: 32 }, cpuAes: true, baseImage: { layout: 'uefi-gpt' } },
      pi4: { board: 'raspberry-pi-4', arch: 'arm64', ramMiB: 4096, storage: { medium: 'sd', sizeGB: 32 }, baseImage: { layout: 'raspi-mbr' } },
    },
    k3s: { version: 'v1.36.5+k3s1', install: { mode: 'online', installScriptSha256: o.installScriptSha256 ?? '1'.repeat(64) } },
    gitops: { url: 'ssh://git@git.example.com/acme/fleet.git', knownHosts: 'git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFz0tXm8/8UzjaFRl6pAc13aaNDRzRIZzLUlIs6mitf' },
    admins: [{ name: 'Ops', email: 'ops@example.com' }],
    defaults: {
      profile: 'ipc',
      network: { mode: 'dhcp' },
      encryption: tang,
      maintenanceWindow: { days: ['sat', 'sun'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' },
      users: [{ name: 'ops', sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9u/Jy1N3N4jyA9HABcdi17Gpm7F1NmG3o544SYLIfl ops@example.com'] }],
    },
    regions: { eu: { timezone: 'Europe/Berlin', sites } },
    ...(o.status ? { status: o.status } : {}),
    ...(o.os ? { os: o.os } : {}),
  };
  return toYaml(inv);
}
