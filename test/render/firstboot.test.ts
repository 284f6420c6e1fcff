// The first-boot program run for real (dash) in a sandbox root: EDGEFORGE_ROOT points every path into a
// temp dir and EDGEFORGE_SYS records the system-changing commands instead of running them.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { renderDevice, bundleHash, type RenderOptions } from '../../scripts/render/device.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import { prepareEncryption } from '../../scripts/pipeline/encryption.ts';
import { EXAMPLE, withFlux } from '../../scripts/testkit/fixed-secrets.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';

const FAKE_INSTALLER = '#!/bin/sh\necho "fake k3s installer: $INSTALL_K3S_EXEC"\n';

// records each call; emulates the few commands whose effect later steps read back
const STUB = `#!/bin/sh
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  useradd) for a; do u=$a; done; echo "$u:x:1000:1000::/home/$u:/bin/bash" >>"$EDGEFORGE_ROOT/etc/passwd" ;;
  passwd) for a; do u=$a; done; echo "$u:!:19000::::::" >>"$EDGEFORGE_ROOT/etc/shadow" ;;
  modinfo|modprobe) [ -z "\${EF_TEST_NO_WG:-}" ] ;;
  curl) while [ $# -gt 0 ]; do if [ "$1" = -o ]; then printf '%s' "$EF_TEST_CURL_BODY" >"$2"; fi; shift; done ;;
  nft) [ -z "\${EF_TEST_NFT_FAIL:-}" ] ;;
esac
`;

let root: string;
let fleet: Fleet;

function setup(id: string, mutate?: (f: Fleet) => Fleet, render?: RenderOptions): { files: RenderedFile[]; fleet: Fleet } {
  const f = mutate ? mutate(structuredClone(fleet)) : fleet;
  const d = f.active.find((x) => x.id === id)!;
  const files = renderDevice(f, d, fixedSecretsFor(d), render);
  for (const file of files.filter((x) => x.path.startsWith('bundle/'))) {
    const p = path.join(root, 'var/lib/edgeforge', file.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, file.bytes, { mode: file.mode });
  }
  const w = (p: string, t: string) => (mkdirSync(path.dirname(path.join(root, p)), { recursive: true }), writeFileSync(path.join(root, p), t));
  w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
  w('etc/shadow', 'root:$6$hash:19000::::::\n');
  w('etc/hosts', '127.0.0.1\tlocalhost\n127.0.1.1\tubuntu\n');
  w('etc/ssh/ssh_host_rsa_key', 'image key');
  w('boot/firmware/cmdline.txt', 'console=serial0,115200 root=LABEL=writable rootwait\n');
  w('var/lib/cloud/instances/iid-1/user-data.txt', 'secret');
  w('var/lib/cloud/instances/iid-1/obj.pkl', 'secret');
  w('var/lib/cloud/instance/cloud-config.txt', 'secret');
  w('var/lib/cloud/seed/nocloud/user-data', 'secret');
  w('var/lib/cloud/seed/nocloud/meta-data', 'instance-id: x\n');
  w('boot/firmware/user-data', '#cloud-config\nssh_keys: {ed25519_private: secret}\n');
  w('stub.sh', STUB);
  chmodSync(path.join(root, 'stub.sh'), 0o755);
  return { files, fleet: f };
}

function runProgram(env: Record<string, string> = {}) {
  const r = spawnSync('dash', [path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh')], {
    env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EF_TEST_CURL_BODY: FAKE_INSTALLER, ...env },
    encoding: 'utf8',
  });
  const sys = existsSync(path.join(root, 'sys.log')) ? readFileSync(path.join(root, 'sys.log'), 'utf8') : '';
  rmSync(path.join(root, 'sys.log'), { force: true });
  return { code: r.status, stderr: r.stderr, sys };
}

const pinInstaller = (f: Fleet) => {
  if (f.k3s.install.mode === 'online') f.k3s.install.installScriptSha256 = sha256Hex(FAKE_INSTALLER);
  return f;
};
const noEncryption = (id: string) => (f: Fleet) => {
  for (const d of f.active) if (d.id === id) d.encryption = { ...d.encryption, mode: 'none' };
  return pinInstaller(f);
};
const read = (p: string) => readFileSync(path.join(root, p), 'utf8');
const mode = (p: string) => statSync(path.join(root, p)).mode & 0o777;

beforeEach(async () => {
  fleet ??= await exampleFleet();
  root = mkdtempSync(path.join(tmpdir(), 'ef-firstboot-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('first-boot program in a sandbox root', () => {
  it('runs every step in order on a Pi single-node server (encryption none) and records the bundle hash', () => {
    const { files } = setup('brno1-dock-001', pinInstaller);
    const r = runProgram();
    expect(r.stderr).toContain('[record]: ok');
    expect(r.code).toBe(0);
    const order = [...r.stderr.matchAll(/\[(\w+)\]: begin/g)].map((m) => m[1]);
    expect(order).toEqual(['preflight', 'identity', 'kernel_firewall', 'encrypt_data_volume', 'k3s', 'flux_bootstrap', 'erase_secrets', 'record']);
    // identity
    expect(read('etc/hostname')).toBe('brno1-dock-001\n');
    expect(read('etc/hosts')).toContain('127.0.1.1\tbrno1-dock-001\n');
    expect(read('etc/hosts')).not.toContain('ubuntu');
    expect(read('home/ops/.ssh/authorized_keys')).toContain('ops@acme.example');
    expect(mode('home/ops/.ssh/authorized_keys')).toBe(0o600);
    expect(read('etc/sudoers.d/90-edgeforge-ops')).toBe('ops ALL=(ALL) NOPASSWD:ALL\n');
    expect(mode('etc/ssh/ssh_host_ed25519_key')).toBe(0o600);
    expect(read('etc/ssh/ssh_host_ed25519_key')).toBe(fixedSecretsFor(fleet.active.find((d) => d.id === 'brno1-dock-001')!).sshHostKey.privateKey);
    expect(existsSync(path.join(root, 'etc/ssh/ssh_host_rsa_key'))).toBe(false);
    expect(read('etc/ssh/sshd_config.d/01-edgeforge.conf')).toContain('PasswordAuthentication no');
    // kernel, boot args, firewall
    expect(read('etc/sysctl.d/90-edgeforge-k3s.conf')).toContain('kernel.panic = 10');
    expect(read('boot/firmware/cmdline.txt')).toBe('console=serial0,115200 root=LABEL=writable rootwait cgroup_memory=1 cgroup_enable=memory\n');
    expect(read('etc/edgeforge/nftables.nft')).toContain('table inet edgeforge {');
    // K3s: config, tokens, installer verified and run without starting (the reboot comes first)
    expect(mode('etc/rancher/k3s/config.yaml')).toBe(0o600);
    expect(mode('var/lib/edgeforge/secrets/k3s-token')).toBe(0o600);
    expect(r.sys).toMatch(/^env INSTALL_K3S_VERSION=v1\.36\.5\+k3s1 INSTALL_K3S_EXEC=server INSTALL_K3S_SKIP_START=true sh /m);
    for (const c of [
      'useradd --create-home --shell /bin/bash --user-group ops',
      'passwd -l ops',
      'passwd -l root',
      'sysctl -q -p',
      'nft -c -f',
      'nft -f',
      'systemctl enable edgeforge-nftables.service',
      'curl -sfL',
    ]) {
      expect(r.sys, c).toContain(c);
    }
    expect(r.sys).not.toContain('flush');
    // one-time secrets erased: bundle copies, cloud-init's copies, the seed
    expect(readdirSync(path.join(root, 'var/lib/edgeforge/bundle/secrets'))).toEqual([]);
    for (const p of ['var/lib/cloud/instances/iid-1/user-data.txt', 'var/lib/cloud/instances/iid-1/obj.pkl', 'var/lib/cloud/instance/cloud-config.txt'])
      expect(existsSync(path.join(root, p)), p).toBe(false);
    expect(read('var/lib/cloud/seed/nocloud/user-data')).toMatch(/^#cloud-config\n# edgeforge: the one-time secrets/);
    expect(read('boot/firmware/user-data')).toBe(read('var/lib/cloud/seed/nocloud/user-data'));
    // the record
    const applied = JSON.parse(read('var/lib/edgeforge/applied.json'));
    expect(applied).toMatchObject({ format: 'edgeforge-applied/1', device: 'brno1-dock-001', bundleSha256: bundleHash(files), rebootRequired: true });
    expect(applied.steps).toEqual(['preflight', 'identity', 'kernel_firewall', 'encrypt_data_volume', 'k3s', 'flux_bootstrap', 'erase_secrets', 'record']);
    expect(read('var/log/edgeforge-firstboot.log')).toContain('[k3s] K3s v1.36.5+k3s1 installed');
    // the certificate-renewal check: installed and its timer enabled by the record step
    expect(mode('usr/local/sbin/edgeforge-cert-renewal')).toBe(0o755);
    expect(read('etc/systemd/system/edgeforge-cert-renewal.timer')).toContain('OnCalendar=*-*-* 05:30:00 Europe/Berlin');
    expect(r.sys).toContain('systemctl enable edgeforge-cert-renewal.timer');
  });

  it('is idempotent: a second run changes nothing and calls no installer', () => {
    setup('brno1-dock-001', pinInstaller);
    expect(runProgram().code).toBe(0);
    const snapshot = read('etc/hosts') + read('boot/firmware/cmdline.txt') + read('etc/passwd');
    // the journal says every step is done for this bundle: only preflight runs
    const journaled = runProgram();
    expect(journaled.code).toBe(0);
    expect([...journaled.stderr.matchAll(/\[(\w+)\]: begin/g)].map((m) => m[1])).toEqual(['preflight']);
    expect(read('var/lib/edgeforge/firstboot.state')).toMatch(/^step=end\nstate=done\n/);
    // without the journal every step runs again, and finds nothing to change
    rmSync(path.join(root, 'var/lib/edgeforge/firstboot'), { recursive: true });
    const again = runProgram();
    expect(again.stderr).toContain('[record]: ok');
    expect(again.code).toBe(0);
    // only reads and re-asserting the running kernel's state (cheap, and it may have been reset)
    for (const line of again.sys.trim().split('\n')) expect(line).toMatch(/^(modinfo wireguard|modprobe wireguard|sysctl -q -p \S+)$/);
    expect(read('etc/hosts') + read('boot/firmware/cmdline.txt') + read('etc/passwd')).toBe(snapshot);
    expect(again.stderr).toContain('already installed');
    expect(again.stderr).not.toMatch(/wrote /);
  });

  it('stops at encrypt_data_volume when the bundle was rendered without the encryption stage, and records nothing', () => {
    setup('ulsan1-line1-001', pinInstaller);
    const r = runProgram();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED: encryption mode 'tang', but this bundle has no encryption program/);
    expect(r.stderr).toContain("stopped at step 'encrypt_data_volume' (attempt 1, temporary); steps done: preflight identity kernel_firewall");
    expect(existsSync(path.join(root, 'var/lib/edgeforge/applied.json'))).toBe(false);
    expect(r.sys).not.toContain('INSTALL_K3S');
  });

  it('preflight fails loudly without WireGuard, saying what to do', () => {
    setup('brno1-dock-001', pinInstaller);
    const r = runProgram({ EF_TEST_NO_WG: '1' });
    expect(r.code).toBe(78); // permanent: the kernel does not change by itself
    expect(r.stderr).toMatch(/no WireGuard module.*wireguard-native needs it\. What to do: .*linux-modules-extra-raspi/);
    expect(existsSync(path.join(root, 'etc/hostname'))).toBe(false);
  });

  it('preflight refuses a bundle that does not match its SHA256SUMS', () => {
    setup('brno1-dock-001', pinInstaller);
    writeFileSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/config.yaml'), 'cluster-init: true\n');
    const r = runProgram();
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/does not match its SHA256SUMS.*k3s\/config\.yaml/);
  });

  it('refuses an online install script whose sha256 is not the pinned one', () => {
    setup('brno1-dock-001'); // the example's pin, not the fake installer's sha256
    const r = runProgram();
    expect(r.code).toBe(78); // permanent, recorded as such
    expect(read('var/lib/edgeforge/firstboot.state')).toMatch(/^step=k3s\nstate=failed\n(.*\n)*retry=permanent\n/);
    expect(r.stderr).toMatch(/K3s install script: .* has sha256 [0-9a-f]{64} but edgeforge pinned 0{64}/);
    expect(r.sys).not.toContain('INSTALL_K3S_VERSION');
  });

  it('kernel_firewall stops when the running kernel contradicts protect-kernel-defaults', () => {
    setup('brno1-dock-001', pinInstaller);
    mkdirSync(path.join(root, 'proc/sys/vm'), { recursive: true });
    writeFileSync(path.join(root, 'proc/sys/vm/overcommit_memory'), '0\n');
    const r = runProgram({ EDGEFORGE_STEPS: 'kernel_firewall' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sysctl vm.overcommit_memory is 0 but K3s (protect-kernel-defaults) needs 1');
  });

  it('airgap: checks the bundle files, installs binary and images, runs the installer with INSTALL_K3S_SKIP_DOWNLOAD', () => {
    const blobs = { 'k3s-arm64': 'fake k3s binary\n', 'k3s-airgap-images-arm64.tar.zst': 'fake images\n', 'install.sh': FAKE_INSTALLER };
    setup('changwon2-press-001', (f) => {
      f.k3s.install = {
        mode: 'airgap',
        bundle: 'bundles/k3s',
        sha256: { binary: sha256Hex(blobs['k3s-arm64']), images: sha256Hex(blobs['k3s-airgap-images-arm64.tar.zst']), installScript: sha256Hex(FAKE_INSTALLER) },
      };
      return f;
    });
    for (const [n, t] of Object.entries(blobs)) {
      mkdirSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap'), { recursive: true });
      writeFileSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap', n), t);
    }
    const r = runProgram({ EDGEFORGE_STEPS: 'preflight k3s flux_bootstrap' });
    expect(r.stderr).toContain('[flux_bootstrap]: agent: Flux runs on the site');
    expect(r.code).toBe(0);
    expect(read('usr/local/bin/k3s')).toBe(blobs['k3s-arm64']);
    expect(mode('usr/local/bin/k3s')).toBe(0o755);
    expect(read('var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst')).toBe(blobs['k3s-airgap-images-arm64.tar.zst']);
    expect(read('var/lib/edgeforge/secrets/k3s-agent-token')).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}\n$/);
    expect(r.sys).toMatch(/^env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION=v1\.36\.5\+k3s1 INSTALL_K3S_EXEC=agent INSTALL_K3S_SKIP_START=false sh .*\/k3s\/airgap\/install\.sh$/m);
    expect(r.sys).not.toContain('curl');
    // a damaged airgap file is refused before anything is installed
    rmSync(path.join(root, 'var/lib/edgeforge/k3s-installed'));
    writeFileSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/airgap/k3s-arm64'), 'tampered\n');
    const bad = runProgram({ EDGEFORGE_STEPS: 'k3s' });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/K3s airgap binary: .*k3s-arm64 has sha256 [0-9a-f]{64} but edgeforge pinned/);
  });

  it('Flux bootstrap: the Flux stage places its manifests in K3s auto-deploy dir and installs the hand-over; the bundle copy is erased', async () => {
    const stage = await prepareFlux(withFlux(fleet), EXAMPLE);
    setup('changwon2-server', (f) => pinInstaller(withFlux(f)), stage.render);
    const r = runProgram({ EDGEFORGE_STEPS: 'flux_bootstrap erase_secrets' });
    expect(r.stderr).toContain('[erase_secrets]: ok');
    expect(r.code).toBe(0);
    const m = 'var/lib/rancher/k3s/server/manifests';
    expect(readdirSync(path.join(root, m)).sort()).toEqual(['edgeforge-flux-components.yaml', 'edgeforge-flux-secrets.yaml', 'edgeforge-flux-sync.yaml']);
    expect(mode(`${m}/edgeforge-flux-secrets.yaml`)).toBe(0o600);
    expect(existsSync(path.join(root, 'etc/systemd/system/edgeforge-flux-handover.timer'))).toBe(true);
    expect(readdirSync(path.join(root, 'var/lib/edgeforge/bundle/flux'))).toEqual([]);
    // again: nothing to place, still fine
    const again = runProgram({ EDGEFORGE_STEPS: 'flux_bootstrap' });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already placed');
  });

  it('encrypt_data_volume runs the disk-encryption stage program when the bundle has one', async () => {
    const stage = await prepareEncryption(fleet, EXAMPLE, fleet.active, 1767225600);
    const { files } = setup('ulsan1-line1-001', pinInstaller, { encryption: stage });
    expect(files.map((f) => f.path)).toContain('bundle/encryption/encrypt-data-volume.sh');
    expect(files.map((f) => f.path)).toContain('bundle/secrets/luks-recovery');
    const r = runProgram({ EDGEFORGE_STEPS: 'encrypt_data_volume' });
    expect(r.stderr).not.toContain('has no encryption program');
    // the sandbox has no disk to encrypt: the stage's program stops, and the first-boot program with it
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[encrypt_data_volume\]: FAILED: (?!the encrypted data volume step failed)(.+)\n.*FAILED: the encrypted data volume step failed: \1\n/);
  });

  it('unknown step names are refused', () => {
    setup('brno1-dock-001', noEncryption('brno1-dock-001'));
    const r = runProgram({ EDGEFORGE_STEPS: 'preflight format_disk' });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain("unknown step 'format_disk'");
  });
});
