// The device side of OS updates (docs/os-updates.md), run for real (dash) in sandbox roots: EDGEFORGE_ROOT points
// every path into a temp dir, EDGEFORGE_SYS records what changes the system (rauc, systemctl, mount, curl: a
// stub serves files from a directory). Ring pointers are signed and verified with the real openssl, RAUC's
// system.conf is read by the real rauc, shellcheck reads every program.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { osFleetInventory } from '../../scripts/testkit/os-fleet.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { osStage } from '../../scripts/render/day2/stages.ts';
import { osPrograms, osUpdateTimer } from '../../scripts/render/os/compose.ts';
import {
  currentState,
  fixedSizeText,
  initialStateRecords,
  layoutFile,
  piPartuuid,
  readStateRecord,
  stateRecord,
  stateRecordFiles,
  type LayoutFacts,
  type StateFields,
} from '../../scripts/render/os/slots.ts';
import { ringPointer } from '../../scripts/render/os/ring.ts';
import { autobootTxt } from '../../scripts/render/os/boot.ts';
import { OS_CARRY, OS_UPDATE } from '../../scripts/device/layout.ts';
import { cmsSign } from '../../scripts/keys/os-key.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { statusReporterProgram } from '../../scripts/render/status/compose.ts';
import { osReporterExtension } from '../../scripts/render/os/compose.ts';
import { readStatus } from '../../scripts/fleet-status/report.ts';

const HAVE = requireTools(['dash', 'openssl', 'rauc', 'shellcheck', 'systemd-analyze'], 'test/os/device.test.ts');

const SHA = 'a'.repeat(64);
const RELEASES = { '2026.12.1': { 'uefi-gpt': { file: 'a.raucb', sha256: SHA, baseImageSha256: SHA }, 'raspi-mbr': { file: 'b.raucb', sha256: SHA, baseImageSha256: SHA } } };
const UEFI_FACTS: LayoutFacts = {
  layout: 'uefi-gpt',
  roots: ['/dev/disk/by-partlabel/edgeforge-root-a', '/dev/disk/by-partlabel/edgeforge-root-b'],
  rootUuids: ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'],
  grubenv: 'EFI/debian/grubenv',
};
const PI_FACTS: LayoutFacts = {
  layout: 'raspi-mbr',
  roots: [`/dev/disk/by-partuuid/${piPartuuid('acme', 5)}`, `/dev/disk/by-partuuid/${piPartuuid('acme', 6)}`],
  rootUuids: [piPartuuid('acme', 5), piPartuuid('acme', 6)],
  boots: [`/dev/disk/by-partuuid/${piPartuuid('acme', 2)}`, `/dev/disk/by-partuuid/${piPartuuid('acme', 3)}`],
  bootParts: [2, 3],
};

// records each call; emulates what later steps read back. curl serves $EF_TEST_SOURCE; `rauc install` writes
// the new slot (a copy of $EF_TEST_NEW_SLOT, the next release's root); systemctl is-active says active unless
// the unit is in $EF_TEST_FAILED
const FAKE_INSTALLER = '#!/bin/sh\necho "fake k3s installer"\n';
const STUB = `#!/bin/sh
FAKE_INSTALLER='${FAKE_INSTALLER.replace(/\n/g, '\\n')}'
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  useradd) for a; do u=$a; done; echo "$u:x:1000:1000::/home/$u:/bin/bash" >>"$EDGEFORGE_ROOT/etc/passwd" ;;
  passwd) for a; do u=$a; done; echo "$u:!:19000::::::" >>"$EDGEFORGE_ROOT/etc/shadow" ;;
  modinfo|modprobe) ;;
  curl)
    out= url=
    while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift ;; http*) url=$1 ;; esac; shift; done
    case $url in
      http://os.example/*) [ -f "$EF_TEST_SOURCE/\${url#http://os.example/}" ] || exit 22; cp "$EF_TEST_SOURCE/\${url#http://os.example/}" "$out" ;;
      *) printf "$FAKE_INSTALLER" >"$out" ;;
    esac ;;
  rauc) [ "$2" != install ] || { [ -z "\${EF_TEST_RAUC_FAIL:-}" ] || exit 1; mkdir -p "$EDGEFORGE_ROOT/run/edgeforge/os-update/new"; cp -a "$EF_TEST_NEW_SLOT/." "$EDGEFORGE_ROOT/run/edgeforge/os-update/new/"; } ;;
  systemctl)
    case "$2" in
      is-active) case " \${EF_TEST_FAILED:-} " in *" $3 "*) echo failed; exit 3 ;; esac; echo active ;;
      show) echo exit-code ;;
    esac ;;
esac
`;

let tmp: string;
let fleet: Fleet;
let cert: string;
let key: string;

function sandbox(): string {
  const root = mkdtempSync(path.join(tmp, 'root-'));
  const w = (p: string, t: string) => (mkdirSync(path.dirname(path.join(root, p)), { recursive: true }), writeFileSync(path.join(root, p), t));
  w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n');
  w('etc/shadow', 'root:$6$hash:19000::::::\n');
  w('etc/group', 'root:x:0:\nsudo:x:27:\n');
  w('etc/gshadow', 'root:*::\nsudo:*::\n');
  w('etc/hosts', '127.0.0.1\tlocalhost\n');
  w('etc/fstab', 'PARTUUID=11111111-1111-4111-8111-111111111111\t/\text4\terrors=remount-ro\t0\t1\nPARTUUID=33333333-3333-4333-8333-333333333333\t/boot/efi\tvfat\tumask=0077\t0\t2\n');
  w('etc/ssh/ssh_host_rsa_key', 'image key');
  w('etc/machine-id', 'c0ffee\n');
  w('var/lib/cloud/instances/iid-1/obj.pkl', 'state');
  w('proc/cmdline', 'root=PARTUUID=x rauc.slot=A panic=10 ro\n');
  w('stub.sh', STUB);
  chmodSync(path.join(root, 'stub.sh'), 0o755);
  return root;
}

function device(id: string): ResolvedDevice {
  return fleet.active.find((d) => d.id === id)!;
}

/** the device's rendered bundle under the sandbox, with the card's shared partition (layout + state) */
function install(root: string, d: ResolvedDevice, facts: LayoutFacts): void {
  const f = structuredClone(fleet);
  const dd = f.active.find((x) => x.id === d.id)!;
  dd.encryption = { ...dd.encryption, mode: 'none' }; // the encryption program has its own sandbox tests
  for (const file of renderDevice(f, dd, fixedSecretsFor(dd), { os: osStage(readFileSync(cert, 'utf8')) })) {
    if (!file.path.startsWith('bundle/')) continue;
    const p = path.join(root, 'var/lib/edgeforge', file.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, file.bytes, { mode: file.mode });
  }
  const shared = path.join(root, OS_UPDATE.sharedMount.slice(1));
  mkdirSync(path.join(shared, 'edgeforge'), { recursive: true });
  writeFileSync(path.join(shared, OS_UPDATE.layoutRel), layoutFile(facts));
  for (const r of initialStateRecords('2026.12.1')) writeFileSync(path.join(shared, r.rel), r.text);
}

/** the settings first boot puts in place (for the programs' tests that skip first boot) */
function settings(root: string): void {
  mkdirSync(path.join(root, 'etc/edgeforge'), { recursive: true });
  cpSync(path.join(root, 'var/lib/edgeforge/bundle/os/os-update.conf'), path.join(root, 'etc/edgeforge/os-update.conf'));
}

function run(root: string, program: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync('dash', [program, ...args], {
    env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EDGEFORGE_LOG: path.join(root, 'os.log'), ...env },
    encoding: 'utf8',
  });
  const sys = existsSync(path.join(root, 'sys.log')) ? readFileSync(path.join(root, 'sys.log'), 'utf8') : '';
  rmSync(path.join(root, 'sys.log'), { force: true });
  return { code: r.status, out: r.stdout, err: r.stderr, sys };
}

const read = (root: string, p: string) => readFileSync(path.join(root, p), 'utf8');
const stateFile = (root: string, i: number) => path.join(root, OS_UPDATE.sharedMount.slice(1), `${OS_UPDATE.stateRel}.${i}`);
/** the current OS state record as KEY='value' lines (SEQ first, then the keys in order) */
const state = (root: string) => {
  const f = currentState([0, 1].map((i) => (existsSync(stateFile(root, i)) ? readFileSync(stateFile(root, i), 'utf8') : undefined)));
  if (!f) throw new Error('no valid OS state record');
  return (
    Object.entries(f)
      .map(([k, v]) => `${k}='${v}'`)
      .join('\n') + '\n'
  );
};
/** KEY='value' lines as state fields */
const fieldsOf = (text: string): StateFields => Object.fromEntries([...text.matchAll(/^([A-Z_]+)='(.*)'$/gm)].map((m) => [m[1], m[2]]));
const writeState = (root: string, fields: StateFields) => {
  for (const r of stateRecordFiles(fields)) writeFileSync(path.join(root, OS_UPDATE.sharedMount.slice(1), r.rel), r.text);
};

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-os-device-'));
  fleet = loadInventoryBytes(
    Buffer.from(osFleetInventory({ piSite: true, installScriptSha256: sha256Hex(FAKE_INSTALLER), os: { version: '2026.12.1', releases: RELEASES, source: { url: 'http://os.example/' } } })),
    'fleet.yaml',
  );
  key = path.join(tmp, 'os.key');
  cert = path.join(tmp, 'os.pem');
  execFileSync(
    tool('openssl'),
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=acme OS updates', '-days', '30', '-addext', 'keyUsage=critical,digitalSignature,keyCertSign'],
    { stdio: 'pipe' },
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE)('OS-update programs', () => {
  it('pass shellcheck, as does a first-boot program and a status reporter composed with them', () => {
    const d = device('plant-b-001');
    const files = renderDevice(fleet, d, fixedSecretsFor(d), { os: osStage(readFileSync(cert, 'utf8')) });
    const progs = osPrograms();
    const texts: [string, string][] = [
      ['edgeforge-os-update', progs.update],
      ['edgeforge-os-health', progs.health],
      ['edgeforge-tryboot', progs.tryboot],
      ['firstboot.sh', Buffer.from(files.find((f) => f.path === 'bundle/firstboot.sh')!.bytes).toString()],
      ['edgeforge-status-report', statusReporterProgram(osReporterExtension())],
    ];
    for (const [name, text] of texts) {
      const f = path.join(tmp, name);
      writeFileSync(f, text);
      const r = spawnSync(tool('shellcheck'), ['-s', 'sh', f], { encoding: 'utf8' });
      expect(r.stdout + r.stderr, name).toBe('');
    }
    // the device's timer fires inside its site's window (systemd reads it)
    const timer = osUpdateTimer(fleet.sites.find((s) => s.id === d.siteId)!.window);
    expect(timer).toContain('OnCalendar=Sat,Sun *-*-* 02:00:00 Europe/Berlin');
    expect(timer).toContain('RandomizedDelaySec=3600');
    expect(spawnSync(tool('systemd-analyze'), ['calendar', 'Sat,Sun *-*-* 02:00:00 Europe/Berlin'], { encoding: 'utf8' }).status).toBe(0);
  });
});

describe.runIf(HAVE)('first boot of an A/B device', () => {
  let root: string;
  beforeAll(() => {
    root = sandbox();
    install(root, device('plant-b-001'), UEFI_FACTS);
  });

  it("installs the shared mount, RAUC's configuration from the card's layout, the keyring, the health check and the timer", () => {
    const r = run(root, path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh'), [], { EF_TEST_X: '' });
    expect(r.err).toContain('[record]: ok');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain("OS updates on: edgeforge-os-update.timer installs the stable ring's release inside the maintenance window; slot A runs 2026.12.1");
    expect(r.sys).toContain('systemctl enable --now boot-edgeforge.mount');
    expect(r.sys).toContain('systemctl enable edgeforge-os-health.service');
    expect(r.sys).toContain('systemctl enable edgeforge-os-update.timer');
    // the certificate renewal check is still installed by the same hook
    expect(r.sys).toContain('systemctl enable edgeforge-cert-renewal.timer');
    const conf = read(root, 'etc/rauc/system.conf');
    expect(conf).toContain(
      'compatible=edgeforge/acme/uefi-gpt\nbootloader=grub\ngrubenv=/boot/edgeforge/EFI/debian/grubenv\nstatusfile=/boot/edgeforge/edgeforge/rauc.status\nbundle-formats=verity\nactivate-installed=false\n',
    );
    expect(conf).toContain('[slot.rootfs.1]\ndevice=/dev/disk/by-partlabel/edgeforge-root-b\ntype=ext4\nbootname=B\nresize=true\n');
    expect(read(root, 'etc/rauc/keyring.pem')).toBe(readFileSync(cert, 'utf8'));
    expect(read(root, 'etc/systemd/system/rauc.service.d/10-edgeforge.conf')).toContain('RequiresMountsFor=/boot/edgeforge');
    expect(read(root, 'etc/systemd/system/boot-edgeforge.mount')).toContain('What=/dev/disk/by-partlabel/edgeforge-esp');
    // a hung trial boot is reset by the board's watchdog
    const wd = path.join(root, 'etc/systemd/system.conf.d/10-edgeforge-watchdog.conf');
    expect(readFileSync(wd, 'utf8')).toContain('[Manager]\nRuntimeWatchdogSec=60s\n');
    // the real rauc reads that configuration: a bundle signed by the fleet's key verifies through it
    const content = path.join(tmp, 'content');
    mkdirSync(content, { recursive: true });
    writeFileSync(path.join(content, 'rootfs.ext4'), randomBytes(65536)); // (incompressible: RAUC wants a squashfs over 4 KiB)
    writeFileSync(path.join(content, 'manifest.raucm'), '[update]\ncompatible=edgeforge/acme/uefi-gpt\nversion=2027.01.0\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n');
    const bundle = path.join(tmp, 'tiny.raucb');
    rmSync(bundle, { force: true });
    execFileSync(tool('rauc'), ['bundle', `--cert=${cert}`, `--key=${key}`, content, bundle], { stdio: 'pipe' });
    const sc = path.join(tmp, 'system.conf');
    writeFileSync(sc, conf.replace('path=/etc/rauc/keyring.pem', `path=${path.join(root, 'etc/rauc/keyring.pem')}`));
    const info = spawnSync(tool('rauc'), [`--conf=${sc}`, 'info', bundle], { encoding: 'utf8' });
    expect(info.status, info.stderr).toBe(0);
    expect(info.stderr).toContain('Verified inline signature');
  });

  it('carries everything first boot wrote on the root (OS_CARRY covers it)', () => {
    // every file and link under the root after first boot, less what is not the root's: the data volume's
    // directories, the kernel's, logs, the shared partition, the sandbox's own stub
    const skip = ['/proc/', '/sys/', '/run/', '/var/log/', '/var/lib/rancher/', '/var/lib/edgeforge/secrets/', `${OS_UPDATE.sharedMount}/`, '/stub.sh', '/sys.log', '/os.log'];
    const all: string[] = [];
    const walk = (rel: string) => {
      for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
        const p = `${rel}/${e.name}`;
        if (e.isDirectory() && !lstatSync(path.join(root, p)).isSymbolicLink()) walk(p);
        else all.push(p);
      }
    };
    walk('');
    const covered = (p: string) =>
      OS_CARRY.some((c) => {
        if (c.how === 'file' || c.how === 'accounts') return p === c.path;
        if (c.how === 'dir') return p.startsWith(`${c.path}/`);
        if (c.how === 'units')
          return (
            p.startsWith(`${c.path}/`) &&
            c.names!.some((n) =>
              p
                .slice(c.path.length + 1)
                .split('/')
                .some((seg) => seg.startsWith(n)),
            )
          );
        return new RegExp(`^${c.path.replace(/[.]/g, '\\.').replace('*', '[^/]*')}$`).test(p);
      });
    const missing = all.filter((p) => !skip.some((s) => p.startsWith(s) || p === s) && !covered(p));
    expect(missing).toEqual([]);
    expect(all).toContain('/etc/rancher/k3s/config.yaml');
    expect(all).toContain('/etc/systemd/system/edgeforge-os-update.timer');
  });
});

function signedSource(dir: string, o: { version: string; issued: number; bundle: Buffer; ring?: 'stable' | 'canary'; layout?: 'uefi-gpt' | 'raspi-mbr' }) {
  const layout = o.layout ?? 'uefi-gpt';
  const ring = o.ring ?? 'stable';
  mkdirSync(path.join(dir, 'bundles'), { recursive: true });
  writeFileSync(path.join(dir, `bundles/edgeforge-os-${o.version}-${layout}.raucb`), o.bundle);
  writeFileSync(path.join(dir, `${ring}.ring`), ringPointer({ fleet: 'acme', ring, version: o.version, issued: o.issued, bundles: [{ layout, sha256: sha256Hex(o.bundle), bytes: o.bundle.length }] }));
  writeFileSync(path.join(dir, `${ring}.ring.cms`), cmsSign(path.join(dir, `${ring}.ring`), cert, readFileSync(key, 'utf8')));
}

describe.runIf(HAVE)('the updater (edgeforge-os-update)', () => {
  let root: string;
  let source: string;
  let newSlot: string;
  const updater = () => path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-os-update');
  const env = () => ({ EF_TEST_SOURCE: source, EF_TEST_NEW_SLOT: newSlot, EF_TEST_X: '' });

  beforeEach(() => {
    root = sandbox();
    install(root, device('plant-b-001'), UEFI_FACTS);
    expect(run(root, path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh'), [], env()).code).toBe(0);
    source = mkdtempSync(path.join(tmp, 'source-'));
    // the next release's root: its own accounts (a new system user), its own host keys and fstab
    newSlot = mkdtempSync(path.join(tmp, 'newslot-'));
    const w = (p: string, t: string) => (mkdirSync(path.dirname(path.join(newSlot, p)), { recursive: true }), writeFileSync(path.join(newSlot, p), t));
    w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n_chrony:x:102:103::/var/lib/chrony:/usr/sbin/nologin\n');
    w('etc/shadow', 'root:*:20000::::::\n_chrony:!:20000::::::\n');
    w('etc/group', 'root:x:0:\nsudo:x:27:\n_chrony:x:103:\n');
    w('etc/gshadow', 'root:*::\nsudo:*::\n_chrony:!::\n');
    w('etc/fstab', 'PARTUUID=99999999-0000-4000-8000-000000000000\t/\text4\terrors=remount-ro\t0\t1\n');
    w('etc/ssh/ssh_host_ecdsa_key', 'new image key');
    w('etc/os-release', 'VERSION="next"\n');
  });

  it('inside the window: verifies the pointer, downloads and checks the bundle, installs, carries the device over, activates the slot', () => {
    const bundle = Buffer.from('a RAUC bundle of 2027.01.0\n'.repeat(100));
    signedSource(source, { version: '2027.01.0', issued: 1767225600, bundle });
    // Saturday 2026-01-03 02:30 Europe/Berlin: inside sat,sun 02:00-04:00
    const r = run(root, updater(), ['run', '--no-reboot'], { ...env(), EDGEFORGE_OS_NOW: String(Date.parse('2026-01-03T01:30:00Z') / 1000) });
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('ring stable: release 2027.01.0 (pointer issued 1767225600, from http://os.example/stable.ring)');
    expect(r.err).toContain('installing 2027.01.0 into slot B (slot A, 2026.12.1, keeps running)');
    const calls = r.sys.split('\n').filter((l) => l.startsWith('rauc'));
    expect(calls).toEqual([`rauc install ${path.join(root, 'var/lib/edgeforge-data/os-update/edgeforge-os-2027.01.0-uefi-gpt.raucb')}`, 'rauc status mark-active other']);
    expect(r.err).toContain('slot B is marked active: it boots (once, as a trial) at the next reboot');
    // the shared state: B holds the new release on trial
    expect(state(root)).toContain("B_VERSION='2027.01.0'\nTRIAL='B'\nTRIAL_VERSION='2027.01.0'");
    expect(state(root)).toContain("TRIAL_STAGE='activated'");
    // the new slot: carried over, its own system users kept
    const n = path.join(root, 'run/edgeforge/os-update/new');
    const rd = (p: string) => readFileSync(path.join(n, p), 'utf8');
    expect(rd('etc/passwd')).toBe(
      'root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n_chrony:x:102:103::/var/lib/chrony:/usr/sbin/nologin\nops:x:1000:1000::/home/ops:/bin/bash\n',
    );
    // (first boot locked root's password: the running root's line wins)
    expect(rd('etc/shadow')).toBe('root:!:19000::::::\n_chrony:!:20000::::::\nops:!:19000::::::\n');
    expect(rd('etc/hostname')).toBe('plant-b-001\n');
    expect(rd('etc/machine-id')).toBe('c0ffee\n');
    expect(rd('etc/rancher/k3s/config.yaml')).toBe(read(root, 'etc/rancher/k3s/config.yaml'));
    expect(rd('etc/rauc/system.conf')).toBe(read(root, 'etc/rauc/system.conf'));
    expect(
      readdirSync(path.join(n, 'etc/ssh'))
        .filter((x) => x.startsWith('ssh_host_'))
        .sort(),
    ).toEqual(['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
    expect(rd('etc/systemd/system/edgeforge-os-update.timer')).toContain('OnCalendar=Sat,Sun *-*-* 02:00:00 Europe/Berlin');
    expect(rd('etc/systemd/system/edgeforge-os-health.service')).toContain('ExecStart=/usr/local/sbin/edgeforge-os-health');
    expect(rd('var/lib/edgeforge/applied.json')).toBe(read(root, 'var/lib/edgeforge/applied.json'));
    expect(rd('etc/os-release')).toBe('VERSION="next"\n');
    // its fstab: the running root's, the root line pointing at slot B
    expect(rd('etc/fstab').split('\n')[0]).toBe(`PARTUUID=${UEFI_FACTS.rootUuids[1]} / ext4 errors=remount-ro 0 1`);
    expect(rd('etc/fstab')).toContain('/boot/efi');
    for (const m of ['var/lib/edgeforge-data', 'var/lib/rancher', 'var/lib/edgeforge/secrets', 'boot/edgeforge']) expect(existsSync(path.join(n, m)), m).toBe(true);
    // the download is gone once installed; the pointer is remembered
    expect(readdirSync(path.join(root, 'var/lib/edgeforge-data/os-update'))).toEqual([]);
    expect(read(root, 'var/lib/edgeforge/os-update/issued')).toBe('1767225600\n');
  });

  it('does nothing outside the window, nothing when up to date, and reboots into the slot (UEFI) when it installs', () => {
    signedSource(source, { version: '2027.01.0', issued: 1767225600, bundle: Buffer.from('bundle') });
    const outside = run(root, updater(), ['run'], { ...env(), EDGEFORGE_OS_NOW: String(Date.parse('2026-01-05T01:30:00Z') / 1000) });
    expect(outside.code).toBe(0);
    expect(outside.err).toContain('outside the maintenance window (sat sun 02:00-04:00 Europe/Berlin)');
    expect(outside.sys).not.toContain('curl');
    const now = run(root, updater(), ['run', '--now'], env());
    expect(now.code, now.err).toBe(0);
    expect(now.sys).toContain('systemctl reboot\n');
    // back on A, as if B had come and gone: A runs what the ring wants
    signedSource(source, { version: '2026.12.1', issued: 1767225700, bundle: Buffer.from('bundle') });
    writeState(root, { A_VERSION: '2026.12.1' });
    const same = run(root, updater(), ['run', '--now'], env());
    expect(same.err).toContain("up to date: slot A runs 2026.12.1, the stable ring's release");
    expect(same.sys).not.toContain('rauc');
  });

  it("refuses a pointer that is not signed by the fleet's key, an older one replayed, and a bundle that does not hash as it says", () => {
    const bundle = Buffer.from('bundle');
    signedSource(source, { version: '2027.01.0', issued: 1767225600, bundle });
    writeFileSync(path.join(source, 'stable.ring'), readFileSync(path.join(source, 'stable.ring'), 'utf8').replace('2027.01.0', '2027.02.0'));
    const forged = run(root, updater(), ['run', '--now', '--no-reboot'], env());
    expect(forged.code).toBe(1);
    expect(forged.err).toContain('does not verify against /etc/rauc/keyring.pem');
    expect(forged.err).toContain("not signed by this fleet's OS-update key; ignored");
    // a good one, then an older one
    signedSource(source, { version: '2026.12.1', issued: 1767225600, bundle });
    expect(run(root, updater(), ['run', '--now', '--no-reboot'], env()).code).toBe(0);
    signedSource(source, { version: '2026.06.0', issued: 1767000000, bundle });
    const replay = run(root, updater(), ['run', '--now', '--no-reboot'], env());
    expect(replay.code).toBe(1);
    expect(replay.err).toContain('was issued at 1767000000, before the one this device already follows (1767225600): ignored');
    // a bundle swapped at the source
    signedSource(source, { version: '2027.01.0', issued: 1767300000, bundle });
    writeFileSync(path.join(source, 'bundles/edgeforge-os-2027.01.0-uefi-gpt.raucb'), 'something else');
    const swapped = run(root, updater(), ['run', '--now', '--no-reboot'], env());
    expect(swapped.code).toBe(1);
    expect(swapped.err).toContain('does not have the sha256 its ring pointer gives');
    expect(swapped.sys).not.toContain('rauc install');
    expect(readdirSync(path.join(root, 'var/lib/edgeforge-data/os-update'))).toEqual([]);
  });

  it('uses the inbox when the source is out of reach (airgap), and holds back a release that came back twice', () => {
    const bundle = Buffer.from('bundle from a USB stick');
    const inbox = path.join(root, 'var/lib/edgeforge-data/os-inbox');
    signedSource(inbox, { version: '2027.01.0', issued: 1767225600, bundle });
    cpSync(path.join(inbox, 'bundles/edgeforge-os-2027.01.0-uefi-gpt.raucb'), path.join(inbox, 'edgeforge-os-2027.01.0-uefi-gpt.raucb'));
    const r = run(root, updater(), ['run', '--now', '--no-reboot'], env());
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('cannot fetch http://os.example/stable.ring (offline?); looking in the inbox');
    expect(r.sys).toContain(`rauc install ${path.join(inbox, 'edgeforge-os-2027.01.0-uefi-gpt.raucb')}`);
    // the same release came back twice: a person decides
    writeState(root, { A_VERSION: '2026.12.1', ROLLBACK_VERSION: '2027.01.0', ROLLBACK_COUNT: '2', ROLLBACK_REASON: 'health check: k3s.service failed' });
    const held = run(root, updater(), ['run', '--now', '--no-reboot'], env());
    expect(held.err).toContain('held back: 2027.01.0 came back 2 times (health check: k3s.service failed)');
    expect(held.sys).not.toContain('rauc');
    expect(run(root, updater(), ['retry'], env()).code).toBe(0);
    expect(state(root)).toContain("ROLLBACK_COUNT='0'");
    expect(run(root, updater(), ['run', '--now', '--no-reboot'], env()).sys).toContain('rauc install');
  });

  it('leaves the running slot to boot when rauc install fails', () => {
    signedSource(source, { version: '2027.01.0', issued: 1767225600, bundle: Buffer.from('bundle') });
    const r = run(root, updater(), ['run', '--now', '--no-reboot'], { ...env(), EF_TEST_RAUC_FAIL: '1' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('rauc install of 2027.01.0 failed');
    expect(r.sys).not.toContain('mark-active');
    // recorded as an install that did not finish: the health check says so at the next boot
    expect(state(root)).toContain("TRIAL_STAGE='installing'");
  });
});

describe.runIf(HAVE)('the health check (edgeforge-os-health)', () => {
  let root: string;
  const health = () => path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-os-health');
  const withState = (extra: string, slot: string) => {
    writeState(root, fieldsOf(`A_VERSION='2026.12.1'\nB_VERSION='2027.01.0'\n${extra}`));
    writeFileSync(path.join(root, 'proc/cmdline'), `root=PARTUUID=x rauc.slot=${slot} ro\n`);
  };
  const fast = { EDGEFORGE_OS_SETTLE: '0', EDGEFORGE_OS_HEALTH_TIMEOUT: '20' };

  beforeEach(() => {
    root = sandbox();
    install(root, device('plant-b-001'), UEFI_FACTS);
    settings(root);
    writeFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'step=end\nstate=done\n');
  });

  it('marks a healthy trial slot good', () => {
    withState("TRIAL='B'\nTRIAL_VERSION='2027.01.0'\nTRIAL_STAGE='activated'\n", 'B');
    const r = run(root, health(), [], fast);
    expect(r.code, r.err).toBe(0);
    expect(r.sys).toContain('rauc status mark-good booted');
    expect(r.err).toContain('slot B passed its health check: 2027.01.0 is marked good');
    expect(state(root)).toContain("TRIAL=''");
  });

  it('marks a trial slot whose unit failed bad, records the rollback and reboots', () => {
    withState("TRIAL='B'\nTRIAL_VERSION='2027.01.0'\nTRIAL_STAGE='activated'\n", 'B');
    const r = run(root, health(), [], { ...fast, EF_TEST_FAILED: 'edgeforge-nftables.service' });
    expect(r.sys).toContain('rauc status mark-bad booted');
    expect(r.sys).toContain('systemctl reboot');
    expect(r.err).toContain('ROLLBACK: 2027.01.0 did not pass its trial (1 time(s) in a row): health check: edgeforge-nftables.service failed (exit-code)');
    expect(state(root)).toMatch(/ROLLBACK_VERSION='2027.01.0'\nROLLBACK_AT='[0-9TZ:-]+'\nROLLBACK_REASON='health check: edgeforge-nftables.service failed \(exit-code\)'\nROLLBACK_COUNT='1'/);
  });

  it('records a trial that never came up (the boot loader went back by itself) and an install cut short', () => {
    withState("TRIAL='B'\nTRIAL_VERSION='2027.01.0'\nTRIAL_STAGE='activated'\nROLLBACK_VERSION='2027.01.0'\nROLLBACK_COUNT='1'\n", 'A');
    const r = run(root, health(), [], fast);
    expect(r.sys.split('\n').filter((l) => l.startsWith('rauc'))).toEqual(['rauc status mark-bad other', 'rauc status mark-good booted']);
    expect(state(root)).toContain("ROLLBACK_COUNT='2'");
    expect(state(root)).toContain('slot B did not come up far enough to check its health');
    withState("TRIAL='B'\nTRIAL_VERSION='2027.01.0'\nTRIAL_STAGE='installing'\n", 'A');
    const cut = run(root, health(), [], fast);
    expect(cut.err).toContain('the install of 2027.01.0 into slot B was interrupted before it was activated; slot A (2026.12.1) runs as before');
    expect(cut.sys).not.toContain('mark-bad');
    expect(state(root)).toContain("TRIAL=''");
  });

  it('marks a committed slot good at every boot (the boot loader counts each boot as a try)', () => {
    withState('', 'A');
    const r = run(root, health(), [], fast);
    expect(r.sys).toBe('rauc status mark-good booted\n');
  });
});

describe.runIf(HAVE)('the shared OS state on FAT: two records, overwritten in place', () => {
  let root: string;
  const updater = () => path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-os-update');
  const health = () => path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-os-health');
  const seqOf = (i: number) => readStateRecord(readFileSync(stateFile(root, i), 'utf8'))?.seq;

  beforeEach(() => {
    root = sandbox();
    install(root, device('plant-b-001'), UEFI_FACTS);
    settings(root);
    writeFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'step=end\nstate=done\n');
  });

  it('writes each change over the older record, in place, and never touches the current one', () => {
    expect([seqOf(0), seqOf(1)]).toEqual([1, 0]);
    const ino = [0, 1].map((i) => statSync(stateFile(root, i)).ino);
    const current = readFileSync(stateFile(root, 0));
    expect(run(root, updater(), ['retry']).code).toBe(0);
    expect([seqOf(0), seqOf(1)]).toEqual([1, 2]);
    expect(readFileSync(stateFile(root, 0)).equals(current)).toBe(true);
    expect(run(root, updater(), ['retry']).code).toBe(0);
    expect([seqOf(0), seqOf(1)]).toEqual([3, 2]);
    for (const i of [0, 1]) {
      expect(statSync(stateFile(root, i)).ino, 'renamed over (a rename is not atomic on FAT)').toBe(ino[i]);
      expect(statSync(stateFile(root, i)).size).toBe(OS_UPDATE.stateRecordBytes);
    }
    expect(state(root)).toContain("A_VERSION='2026.12.1'");
  });

  it('reads the record before a write that a power cut tore, and writes the next change over the torn one', () => {
    writeState(root, { A_VERSION: '2026.12.1', B_VERSION: '2026.11.0' });
    writeFileSync(path.join(root, 'proc/cmdline'), 'root=PARTUUID=x rauc.slot=A ro\n');
    // the updater recorded its install (seq 2 in record 1)...
    const before = readFileSync(stateFile(root, 0));
    expect(run(root, updater(), ['retry']).code).toBe(0);
    // ...and the power went while the record was written: half of it on the card, the rest old bytes or zeros
    const torn = readFileSync(stateFile(root, 1));
    torn.fill(0, 200);
    writeFileSync(stateFile(root, 1), torn);
    const st = run(root, updater(), ['state']);
    expect(st.code, st.err).toBe(0);
    expect(st.out).toContain("SEQ='1'\nA_VERSION='2026.12.1'\nB_VERSION='2026.11.0'");
    expect(st.out).toContain(`# from ${OS_UPDATE.sharedMount}/${OS_UPDATE.stateRel}.0`);
    const h = run(root, health(), [], { EDGEFORGE_OS_SETTLE: '0' });
    expect(h.code, h.err).toBe(0);
    expect(h.err).not.toContain('no readable OS state record');
    // a change now goes over the torn record; the good one stays as it was
    expect(run(root, updater(), ['retry']).code).toBe(0);
    expect(readFileSync(stateFile(root, 0)).equals(before)).toBe(true);
    expect(seqOf(1)).toBe(2);
    // both spoiled (or gone): the programs say so and go on; the next write starts again
    truncateSync(stateFile(root, 0), 100);
    rmSync(stateFile(root, 1));
    const none = run(root, updater(), ['status']);
    expect(none.err).toContain('no readable OS state record');
    expect(none.out).toContain('slot A: (empty)');
    expect(run(root, updater(), ['retry']).code).toBe(0);
    expect(statSync(stateFile(root, 0)).size).toBe(OS_UPDATE.stateRecordBytes);
    expect(state(root)).toContain("ROLLBACK_COUNT='0'");
  });

  it('reads the single state file of a card made before the records, until its first change writes one', () => {
    for (const i of [0, 1]) rmSync(stateFile(root, i));
    writeFileSync(path.join(root, OS_UPDATE.sharedMount.slice(1), OS_UPDATE.stateRel), "# old\nA_VERSION='2026.12.1'\nB_VERSION='2026.11.0'\nROLLBACK_COUNT='2'\n");
    const st = run(root, updater(), ['state']);
    expect(st.out).toContain("A_VERSION='2026.12.1'\nB_VERSION='2026.11.0'");
    expect(st.out).toContain('(a card made before the two records)');
    expect(run(root, updater(), ['retry']).code).toBe(0);
    expect(state(root)).toContain("SEQ='1'\nA_VERSION='2026.12.1'\nB_VERSION='2026.11.0'");
    expect(state(root)).toContain("ROLLBACK_COUNT='0'");
  });

  it('makes the same bytes as the build for the same fields (padding of every length, values cleaned alike)', () => {
    // every way the padding can end: a whole number of comment lines, a last line of one byte (a newline), or longer
    for (const n of [0, 1, 2, 3, 4, 5, 60, 61, 62, 63, 64, 65, 66]) {
      // a quote, a newline and a non-ASCII letter are dropped by both
      const note = `ö'x\n${'n'.repeat(n)}`;
      writeState(root, { A_VERSION: '2026.12.1', NOTE: note });
      expect(run(root, updater(), ['retry']).code).toBe(0);
      const written = readFileSync(stateFile(root, 1), 'utf8');
      const rec = readStateRecord(written)!;
      expect(rec.fields.NOTE).toBe(`x${'n'.repeat(n)}`);
      expect(written).toBe(stateRecord(rec.fields as StateFields, rec.seq));
    }
    expect(() => fixedSizeText('x'.repeat(600) + '\n', OS_UPDATE.autobootBytes)).toThrow(/do not fit/);
  });
});

describe.runIf(HAVE)('the Raspberry Pi boot-loader backend (edgeforge-tryboot), called as RAUC calls it', () => {
  it('tries a slot through [tryboot], commits it when marked good, and goes back when marked bad', () => {
    const root = sandbox();
    install(root, device('store-c-001'), PI_FACTS);
    settings(root);
    const auto = path.join(root, 'boot/edgeforge/autoboot.txt');
    writeFileSync(auto, fixedSizeText(autobootTxt(2, 3), OS_UPDATE.autobootBytes));
    const ino = statSync(auto).ino;
    const tb = (...a: string[]) => run(root, path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-tryboot'), a);
    expect(tb('get-primary').out).toBe('A\n');
    expect(tb('get-state', 'B').out).toBe('good\n');
    expect(tb('set-primary', 'B').code).toBe(0);
    expect(readFileSync(auto, 'utf8')).toBe(fixedSizeText(autobootTxt(2, 3), OS_UPDATE.autobootBytes));
    expect(tb('get-primary').out).toBe('B\n');
    // B's trial passed: committed
    expect(tb('set-state', 'B', 'good').code).toBe(0);
    expect(readFileSync(auto, 'utf8')).toBe(fixedSizeText(autobootTxt(3, 2), OS_UPDATE.autobootBytes));
    // overwritten in place, one sector: never renamed over (not atomic on FAT), the firmware reads old or new
    expect(statSync(auto).ino).toBe(ino);
    expect(tb('get-primary').out).toBe('B\n');
    // the next update tries A, which fails: the committed slot stays B
    expect(tb('set-primary', 'A').code).toBe(0);
    expect(tb('set-state', 'A', 'bad').code).toBe(0);
    expect(readFileSync(auto, 'utf8')).toContain('[all]\ntryboot_a_b=1\nboot_partition=3\n');
    expect(tb('get-primary').out).toBe('B\n');
    expect(tb('get-state', 'A').out).toBe('bad\n');
    expect(tb('set-primary', 'X').code).not.toBe(0);
  });

  it('carries the seed and the kernel command line into the new boot partition', () => {
    const root = sandbox();
    install(root, device('store-c-001'), PI_FACTS);
    mkdirSync(path.join(root, 'boot/firmware'), { recursive: true });
    writeFileSync(path.join(root, 'boot/firmware/cmdline.txt'), 'console=serial0,115200 root=LABEL=writable rootwait cgroup_memory=1 cgroup_enable=memory\n');
    const fb = run(root, path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh'), []);
    expect(fb.code, fb.err).toBe(0);
    expect(read(root, 'etc/rauc/system.conf')).toContain(`bootloader=custom\nstatusfile=/boot/edgeforge/edgeforge/rauc.status`);
    expect(read(root, 'etc/rauc/system.conf')).toContain(`[handlers]\nbootloader-custom-backend=/usr/local/sbin/edgeforge-tryboot`);
    expect(read(root, 'etc/rauc/system.conf')).toContain(`[slot.boot.1]\ndevice=/dev/disk/by-partuuid/${piPartuuid('acme', 3)}\ntype=vfat\nparent=rootfs.1\n`);
    const work = path.join(root, 'run/edgeforge/os-update');
    mkdirSync(path.join(work, 'boot-old'), { recursive: true });
    writeFileSync(path.join(work, 'boot-old/cmdline.txt'), `console=serial0,115200 root=PARTUUID=${piPartuuid('acme', 5)} rootwait rauc.slot=A panic=10 cgroup_memory=1 cgroup_enable=memory\n`);
    writeFileSync(path.join(work, 'boot-old/user-data'), '#cloud-config\n# erased\n{}\n');
    writeFileSync(path.join(work, 'boot-old/meta-data'), 'instance-id: iid-1\n');
    const source = mkdtempSync(path.join(tmp, 'pi-source-'));
    signedSource(source, { version: '2027.01.0', issued: 1767225600, bundle: Buffer.from('pi bundle'), layout: 'raspi-mbr' });
    const newSlot = mkdtempSync(path.join(tmp, 'pi-new-'));
    mkdirSync(path.join(newSlot, 'etc'));
    const r = run(root, path.join(root, 'var/lib/edgeforge/bundle/os/edgeforge-os-update'), ['run', '--now'], { EF_TEST_SOURCE: source, EF_TEST_NEW_SLOT: newSlot });
    expect(r.code, r.err + r.out).toBe(0);
    expect(readFileSync(path.join(work, 'boot-new/cmdline.txt'), 'utf8')).toBe(
      `console=serial0,115200 rootwait cgroup_memory=1 cgroup_enable=memory root=PARTUUID=${piPartuuid('acme', 6)} rauc.slot=B panic=10\n`,
    );
    expect(readFileSync(path.join(work, 'boot-new/meta-data'), 'utf8')).toBe('instance-id: iid-1\n');
    // the firmware boots the other partition once: reboot "0 tryboot"
    expect(r.sys).toContain('systemctl reboot 0 tryboot');
  });
});

describe.runIf(HAVE)('the status report of an A/B device', () => {
  it('says the running slot, its release, the trial and the last rollback, and edgeforge status reads it', () => {
    const root = sandbox();
    const d = device('plant-b-001');
    install(root, d, UEFI_FACTS);
    writeState(root, {
      A_VERSION: '2026.12.1',
      B_VERSION: '2027.01.0',
      ROLLBACK_VERSION: '2027.01.0',
      ROLLBACK_AT: '2026-01-03T01:40:00Z',
      ROLLBACK_REASON: 'health check: k3s.service failed',
      ROLLBACK_COUNT: '1',
    });
    mkdirSync(path.join(root, 'etc/edgeforge/status'), { recursive: true });
    writeFileSync(path.join(root, 'etc/edgeforge/status/status.conf'), `EFS_DEVICE='${d.id}'\nEFS_FLEET='acme'\nEFS_SITE='${d.siteId}'\nEFS_HOST='127.0.0.1'\nEFS_TOPIC='t'\n`);
    const prog = path.join(root, 'reporter.sh');
    writeFileSync(prog, statusReporterProgram(osReporterExtension()));
    // a stand-in for mosquitto_pub that keeps what it was asked to publish (the real client is in test/status)
    const bin = path.join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'mosquitto_pub'), `#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -f ] && cp "$2" "${root}/published.json"; shift; done\n`);
    chmodSync(path.join(bin, 'mosquitto_pub'), 0o755);
    const r = spawnSync('dash', [prog], { env: { PATH: `${bin}:${process.env.PATH}`, EDGEFORGE_ROOT: root }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const s = readStatus(readFileSync(path.join(root, 'published.json')), d.id);
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    expect(s.report.os).toEqual({
      slot: 'A',
      version: '2026.12.1',
      slots: { A: '2026.12.1', B: '2027.01.0' },
      trial: { slot: '', version: '', at: '' },
      rollback: { version: '2027.01.0', at: '2026-01-03T01:40:00Z', count: 1, reason: 'health check: k3s.service failed' },
      note: '',
    });
  });
});
