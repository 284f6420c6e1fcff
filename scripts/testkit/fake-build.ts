// Test fixtures for provision: an inventory whose devices are harness endpoints, and a small build output
// (manifest.json + per-device files + a POSIX-sh first-boot program that writes under $EDGEFORGE_ROOT and
// records the bundle hash the way the real one does: sha256 of the bundle's SHA256SUMS).
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { sha256Hex } from '../util/hash.ts';
import type { Manifest, ManifestArtifact } from '../manifest/types.ts';
import { loginUser } from './sshd.ts';

export interface DeviceSsh {
  id: string;
  host?: string;
  port?: number;
  user?: string;
  identityFile?: string;
  hostKey?: string;
  jumpHost?: string;
  sudoPasswordEnv?: string;
}

export function inventoryYaml(devices: DeviceSsh[], opts: { name?: string } = {}): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    'version: 1',
    'fleet:',
    `  name: ${opts.name ?? 'provision-test'}`,
    '  industry: manufacturing',
    'profiles:',
    '  rpi4-2g: { board: raspberry-pi-4, arch: arm64, ramMiB: 2048, storage: { medium: sd, sizeGB: 32 }, baseImage: { layout: raspi-mbr } }',
    'k3s:',
    '  version: v1.36.5+k3s1',
    '  install: { mode: online, installScriptSha256: "0000000000000000000000000000000000000000000000000000000000000000" }',
    'gitops:',
    '  url: ssh://git@git.example.com/fleet/fleet.git',
    '  knownHosts: git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFz0tXm8/8UzjaFRl6pAc13aaNDRzRIZzLUlIs6mitf',
    'admins:',
    '  - { name: Fleet Operations, email: fleet-ops@example.com }',
    'defaults:',
    '  profile: rpi4-2g',
    '  network: { mode: dhcp }',
    `  ssh: { user: ${loginUser()}, allowFrom: any }   # no managementSubnet on the test site: SSH opened explicitly`,
    '  users:',
    '    - name: ops',
    '      sshAuthorizedKeys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9u/Jy1N3N4jyA9HABcdi17Gpm7F1NmG3o544SYLIfl ops@example.com]',
    'regions:',
    '  test-region:',
    '    sites:',
    '      lab:',
    '        devices:',
  ];
  devices.forEach((d, i) => {
    const ssh = Object.entries({ host: d.host, port: d.port, user: d.user, identityFile: d.identityFile, hostKey: d.hostKey, jumpHost: d.jumpHost, sudoPasswordEnv: d.sudoPasswordEnv })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}: ${typeof v === 'number' ? v : q(v as string)}`)
      .join(', ');
    const mac = `dc:a6:32:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    lines.push(`          - { id: ${d.id}, serial: "${(0x20000000 + i).toString(16)}", mac: "${mac}", ssh: { ${ssh} } }`);
  });
  return lines.join('\n') + '\n';
}

/** The fake first-boot program: idempotent, writes under $EDGEFORGE_ROOT, records applied.json last. */
export function fakeFirstboot(id: string): string {
  return `#!/bin/sh
# edgeforge test first-boot program for ${id}
set -u
EF_DEVICE_ID=${id}
R="\${EDGEFORGE_ROOT:-}"; R="\${R%/}"
B="\${EDGEFORGE_BUNDLE:-$R/var/lib/edgeforge/bundle}"
S="$R/var/lib/edgeforge"
STEP=start
umask 077
log() { printf '%s edgeforge-firstboot[%s]: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
STEP=preflight
[ "$(id -u)" = 0 ] || die "run me as root"
(cd "$B" && sha256sum --quiet --strict -c SHA256SUMS) || die "the bundle in $B does not match SHA256SUMS"
[ ! -e "$R/fail-apply" ] || die "$(cat "$R/fail-apply")"
mkdir -p "$S" && chmod 0700 "$S"
echo run >>"$S/runs"
STEP=files
mkdir -p "$R/etc/edgeforge"
if ! cmp -s "$B/config/device.conf" "$R/etc/edgeforge/device.conf"; then
  cp "$B/config/device.conf" "$R/etc/edgeforge/device.conf.new" && chmod 0644 "$R/etc/edgeforge/device.conf.new" && mv -f "$R/etc/edgeforge/device.conf.new" "$R/etc/edgeforge/device.conf" || die "cannot write /etc/edgeforge/device.conf"
  log "wrote /etc/edgeforge/device.conf"
fi
if [ -f "$B/secrets/token" ]; then
  cp "$B/secrets/token" "$R/etc/edgeforge/token.new" && chmod 0600 "$R/etc/edgeforge/token.new" && mv -f "$R/etc/edgeforge/token.new" "$R/etc/edgeforge/token" || die "cannot write the token"
  rm -f "$B/secrets/token"
  log "installed the token and erased it from the bundle"
fi
STEP=record
# a program that "finishes" without recording anything (verify must catch it)
if [ -e "$R/empty-record" ]; then : >"$S/applied.json"; exit 0; fi
h=$(sha256sum "$B/SHA256SUMS" | cut -d ' ' -f 1)
printf '{"format":"edgeforge-applied/1","device":"%s","bundleSha256":"%s","steps":["files","record"]}\\n' "$EF_DEVICE_ID" "$h" >"$S/applied.json.new" || die "cannot write applied.json"
chmod 0644 "$S/applied.json.new" && mv -f "$S/applied.json.new" "$S/applied.json" || die "cannot write applied.json"
log "applied bundle $h"
`;
}

/** The smallest first-boot program that does the job's shape: check, install, record (benchmarks). */
export function minimalFirstboot(id: string): string {
  return `#!/bin/sh
# edgeforge benchmark first-boot program for ${id}: records the bundle hash, nothing else
set -eu
R="\${EDGEFORGE_ROOT:-}"; R="\${R%/}"
B="\${EDGEFORGE_BUNDLE:-$R/var/lib/edgeforge/bundle}"
S="$R/var/lib/edgeforge"
h=$(sha256sum "$B/SHA256SUMS")
printf '{"format":"edgeforge-applied/1","device":"${id}","bundleSha256":"%s"}\\n' "\${h%% *}" >"$S/applied.json.new"
mv -f "$S/applied.json.new" "$S/applied.json"
echo "edgeforge-firstboot: applied bundle \${h%% *}" >&2
`;
}

export interface FakeBuildOptions {
  /** the minimal first-boot program (benchmarks) instead of the test one */
  minimal?: boolean;
  /** extra bytes of payload per device (id → size), e.g. to make an upload take a while */
  payload?: Record<string, number>;
  /** changes every device's config (a new build) */
  generation?: number;
}

/** Write OUT/devices/<id>/bundle/... and OUT/manifest.json for the given devices. */
export function writeFakeBuild(outDir: string, ids: string[], opts: FakeBuildOptions = {}): Manifest {
  const devices = ids.map((id) => {
    const files: { rel: string; kind: ManifestArtifact['kind']; bytes: Buffer; secret: boolean }[] = [
      { rel: 'bundle/firstboot.sh', kind: 'firstboot', bytes: Buffer.from(opts.minimal ? minimalFirstboot(id) : fakeFirstboot(id)), secret: false },
      { rel: 'bundle/config/device.conf', kind: 'k3s-config', bytes: Buffer.from(`device=${id}\ngeneration=${opts.generation ?? 1}\n`), secret: false },
      { rel: 'bundle/secrets/token', kind: 'k3s-config', bytes: Buffer.from(`K10-secret-token-${id}-${opts.generation ?? 1}\n`), secret: true },
      // a seed image is never part of the SSH bundle
      { rel: 'seed/seed.img', kind: 'seed-image', bytes: Buffer.alloc(4096, 1), secret: true },
    ];
    const extra = opts.payload?.[id];
    if (extra) files.push({ rel: 'bundle/payload/blob.bin', kind: 'k3s-config', bytes: randomBytes(extra), secret: false });
    const artifacts: ManifestArtifact[] = files.map((f) => {
      const p = `devices/${id}/${f.rel}`;
      const abs = path.join(outDir, p);
      mkdirSync(path.dirname(abs), { recursive: true });
      writeFileSync(abs, f.bytes, { mode: f.secret ? 0o600 : 0o644 });
      return { kind: f.kind, path: p, sha256: sha256Hex(f.bytes), bytes: f.bytes.length, secret: f.secret };
    });
    return { id, region: 'test-region', site: 'lab', profile: 'rpi4-2g', artifacts };
  });
  const manifest: Manifest = { format: 'edgeforge-manifest/1', fleet: 'provision-test', inventorySha256: '0'.repeat(64), sourceDateEpoch: 0, devices };
  writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
