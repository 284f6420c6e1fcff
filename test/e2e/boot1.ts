// Boot 1 of the boot test, tang reachable: cloud-init runs the device's seed, the first-boot service finishes
// (resuming boot 0's run), the test logs in over SSH trusting only the pinned host key and checks the device
// live (Git, day 2, airgap, fleet status, OCI), then powers it off cleanly.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { expect, notReached } from '../../scripts/e2e/checks.ts';
import { bootFiles } from '../../scripts/e2e/disk-read.ts';
import { DEVICE, GIT_GUEST, STATUS_GUEST_IP, TANG_GUEST } from '../../scripts/e2e/fleet.ts';
import { airgapChecks } from '../../scripts/e2e/airgap.ts';
import { Vm } from '../../scripts/e2e/qemu.ts';
import { powerOff } from '../../scripts/e2e/power.ts';
import { freePort, sshRun, sshWait, type SshTarget } from '../../scripts/e2e/ssh.ts';
import { log, stage } from '../../scripts/e2e/stage.ts';
import { statusChecks } from '../../scripts/e2e/status.ts';
import { TEST_BACKOFF, waitFirstbootDone, type FirstbootE2e } from '../../scripts/e2e/firstboot.ts';
import { day2Checks, fluxSecretOnDevice } from '../../scripts/e2e/day2.ts';
import { ISSUER_GUEST, REGISTRY_GUEST, ociChecks } from '../../scripts/e2e/oci.ts';
import { OS_GUEST } from '../../scripts/e2e/os-update.ts';
import { BOOT_TIMEOUT, C, CANARY_DIR, edgeforge, type Built, type Run } from './context.ts';

/** How the test reaches the device on every boot, and what boot 1 saw of it live. */
export interface Device {
  hostKey: string;
  mac?: string;
  sshPort: number;
  target: SshTarget;
  boot: Awaited<ReturnType<typeof bootFiles>>;
  /** boot 1's live state, by topic (hostname, crypt, firstbootLog, k3s, k3sVersion, rancher, clevis, git) */
  live: Record<string, string>;
  /** boot 0's and the permanent-failure boot's settings (scripts/e2e/firstboot.ts) */
  fb: FirstbootE2e;
}

/** the device's pinned host key and MAC from the build, an SSH port, the image's boot files */
export async function deviceAccess(run: Run, built: Built): Promise<Device> {
  const { work, sshKey } = run;
  const hostKey = (await fs.readFile(path.join(built.dir, 'bundle/ssh/ssh_host_ed25519_key.pub'), 'utf8').catch(() => '')).trim();
  const mac = (await fs.readFile(path.join(built.dir, 'seed/network-config'), 'utf8')).match(/macaddress:\s*"?([0-9a-f:]{17})/i)?.[1];
  const sshPort = await freePort();
  const target: SshTarget = { port: sshPort, user: 'ops', identity: sshKey, hostKey, alias: DEVICE, workDir: work };
  const boot = await bootFiles(built.image, work);
  const live: Record<string, string> = {};
  // boot 0 (docs/e2e.md): tang and Git unreachable at first, then the power cut as the k3s step begins
  const fb: FirstbootE2e = {
    image: built.image,
    work,
    boot,
    mac,
    sshPort,
    target,
    timeoutMs: BOOT_TIMEOUT,
    airgapBinary: `${CANARY_DIR}/k3s-arm64`,
    tang: { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, port: () => run.tang!.port },
    git: { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, port: () => run.git!.port },
  };
  return { hostKey, mac, sshPort, target, boot, live, fb };
}

/** boot 1 under qemu: airgapped (restrict=on), with forwards to tang, Git, and the status, OCI and OS-update servers */
function boot1Vm(run: Run, built: Built, dev: Device): Vm {
  const { work } = run;
  const { mac, sshPort, boot } = dev;
  return new Vm({
    disks: [{ path: built.image }],
    kernel: boot.kernel,
    initrd: boot.initrd,
    bios: boot.bios,
    append: `${boot.cmdline} ${TEST_BACKOFF}`,
    mac,
    serialLog: path.join(work, 'boot1-serial.log'),
    sshHostPort: sshPort,
    qmpSocket: path.join(work, 'qmp1.sock'),
    // airgap: no route anywhere but these forwards
    restrict: true,
    guestfwd: [
      { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: run.tang!.port },
      { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, hostPort: run.git!.port, perConnection: true },
      ...(run.status ? [{ guestIp: STATUS_GUEST_IP, guestPort: run.status.port, hostPort: run.status.port, perConnection: true }] : []),
      ...(run.oci?.registry
        ? [
            { guestIp: REGISTRY_GUEST.ip, guestPort: REGISTRY_GUEST.port, hostPort: run.oci.registryPort, perConnection: true },
            { guestIp: ISSUER_GUEST.ip, guestPort: ISSUER_GUEST.port, hostPort: run.oci.issuerPort, perConnection: true },
          ]
        : []),
      ...(run.osSource ? [{ guestIp: OS_GUEST.ip, guestPort: OS_GUEST.port, hostPort: run.osSource.port, perConnection: true }] : []),
    ],
  });
}

/** Boot 1; returns whether it ended in a clean power-off, and its serial console. */
export async function bootOne(run: Run, built: Built, dev: Device): Promise<{ cleanOff1: boolean; con: string }> {
  const { checks, work, fleetDir, edgeLog } = run;
  const { target, live } = dev;
  let cleanOff1 = false;
  const vm = boot1Vm(run, built, dev);
  try {
    await stage('boot 1: kernel', () =>
      checks.run(C.boot1, async () => {
        await vm.waitFor(/systemd\[1\]: .*|Welcome to .*Debian/, 240_000, 'systemd start');
        return `systemd after ${vm.elapsed().toFixed(0)}s`;
      }),
    );
    const finished = await stage('boot 1: cloud-init + first-boot program', () =>
      checks.run(C.cloudInit, async () => {
        const m = await vm.waitFor(/Cloud-init v\. \S+ finished at [^\n]*Datasource (\S+[^\n]*)\n/, BOOT_TIMEOUT, 'cloud-init finished');
        expect(/NoCloud/.test(m[1]), `datasource ${m[1]}`);
        return `finished after ${vm.elapsed().toFixed(0)}s, ${m[1].trim()}`;
      }),
    );
    if (!finished && vm.running) log('cloud-init did not finish; trying SSH anyway to collect what happened');
    // the first-boot service runs after cloud-init (resuming boot 0's run)
    await stage('boot 1: first-boot service', () => waitFirstbootDone(vm, BOOT_TIMEOUT));
    await stage('boot 1: SSH (pinned host key) + live state', () => liveState(run, dev, vm, finished));
    await stage('boot 1: Git over SSH from the device', () => gitFromDevice(run, dev, vm));
    await stage('boot 1: day 2 (upgrade Plans in Git, renewal timer)', () =>
      day2Checks(checks, { target, running: vm.running, git: run.git, published: run.day2Published, work, inventory: path.join(fleetDir, 'inventory.yaml'), device: DEVICE }),
    );
    await stage('boot 1: airgap (network, image archives)', () =>
      airgapChecks(checks, {
        target,
        running: vm.running,
        deviceDir: built.dir,
        pins: run.fluxPins,
        hostPorts: [run.git!.port, run.tang!.port],
        // (tang's forward is one connection, made at start: the unlock check proves it answered)
        allowed: [{ name: 'git', ...GIT_GUEST }, ...(run.status?.broker ? [{ name: 'status broker', ip: STATUS_GUEST_IP, port: run.status.port }] : [])],
      }),
    );
    await stage('boot 1: fleet status (broker on the host)', () =>
      statusChecks(checks, run.status, { target, running: vm.running, inventory: path.join(fleetDir, 'inventory.yaml'), out: built.out, device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }),
    );
    await stage('boot 1: OCI transport (registry on the host)', () => ociChecks(checks, run.oci, { target, running: vm.running, device: DEVICE, live }));
    await stage('boot 1: power off', () =>
      checks.run(C.poweroff1, async () => {
        if (!vm.running) notReached(`the guest already stopped (qemu exit ${vm.exitCode})`);
        await powerOff(vm, target, log);
        expect(vm.exitCode === 0, `qemu exit ${vm.exitCode}`);
        cleanOff1 = true;
        return `off after ${vm.elapsed().toFixed(0)}s`;
      }),
    );
  } finally {
    await vm.close();
  }
  return { cleanOff1, con: vm.console };
}

/** SSH with the pinned host key only, and what the device shows live (kept in boot1-live.txt) */
function liveState(run: Run, dev: Device, vm: Vm, finished: boolean): Promise<boolean> {
  const { checks, work } = run;
  const { hostKey, target, live } = dev;
  return checks.run(C.ssh, async () => {
    if (!vm.running) notReached('the guest is not running');
    if (!hostKey) throw new Error('the build has no bundle/ssh/ssh_host_ed25519_key.pub to pin');
    const w = await sshWait(target, finished ? 120 : 30);
    expect(w.ok, `no SSH login as ops with the pinned key: ${w.lastError}`);
    const q = async (k: string, cmd: string) => {
      const r = await sshRun(target, cmd, 60);
      live[k] = `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr}` : ''}`.trim();
    };
    await q('hostname', 'hostname');
    await q('crypt', 'sudo -n dmsetup ls --target crypt; echo; lsblk -o NAME,TYPE,FSTYPE,SIZE,MOUNTPOINT');
    await q('firstbootLog', 'sudo -n cat /var/log/edgeforge-firstboot.log');
    await q('k3s', 'systemctl is-active k3s.service; systemctl is-enabled k3s.service');
    await q('k3sVersion', '/usr/local/bin/k3s --version');
    // the data volume is mounted over /var/lib/rancher: its files can only be seen while it is open
    await q('rancher', 'sudo -n sh -c "cd /var/lib/rancher/k3s 2>/dev/null && find . -type f | sort | xargs -r sha256sum"; findmnt -n -o SOURCE /var/lib/rancher');
    await q('clevis', 'sudo -n journalctl -b --no-pager -o cat -u "clevis*" -u "systemd-cryptsetup@*" 2>/dev/null | tail -n 20');
    // kept in memory only (not in boot1-live.txt): the secrets check looks for them in unencrypted storage
    run.fluxSecretsOnDevice = (await sshRun(target, 'sudo -n cat /var/lib/rancher/k3s/server/manifests/edgeforge-flux-secrets.yaml', 60)).stdout;
    await fs.writeFile(
      path.join(work, 'boot1-live.txt'),
      Object.entries(live)
        .map(([k, v]) => `## ${k}\n${v}\n`)
        .join('\n'),
    );
    return `logged in as ops; hostname ${live.hostname}`;
  });
}

/** from the device, its deploy key and pinned known_hosts reach the Git stand-in the way Flux's source-controller does */
function gitFromDevice(run: Run, dev: Device, vm: Vm): Promise<boolean> {
  const { checks } = run;
  const { target, live } = dev;
  return checks.run(C.git, async () => {
    if (!vm.running) notReached('the guest is not running');
    if (!run.deployKeyPub) notReached('the build made no flux-system secret with a deploy key');
    const r = await sshRun(target, 'sudo -n sh -s', 120, gitProbeScript(`ssh://git@${GIT_GUEST.ip}/factory/fleet.git`));
    live.git = `${r.stdout}\n[stderr] ${r.stderr}`;
    if (/NO_SECRET/.test(r.stdout)) notReached(`the Flux secret is not on the device: ${r.stdout.trim().slice(0, 200)}`);
    const head = run.git!.head;
    expect(r.stdout.includes(`${head} refs/heads/main`), `no ref advertisement for main (${head}) from the Git stand-in: ${(r.stdout + r.stderr).trim().slice(0, 400)}`);
    const fpr = (await $({ input: run.deployKeyPub + '\n' })`ssh-keygen -lf -`).stdout.split(/\s+/)[1];
    expect(run.git!.log().includes(`Accepted publickey for git from`) && run.git!.log().includes(fpr), `the Git stand-in did not log the device's deploy key ${fpr}`);
    return `upload-pack advertised main ${head.slice(0, 12)}; the stand-in accepted deploy key ${fpr}; host key checked against the pinned known_hosts`;
  });
}

/**
 * Run as root in the guest: take the deploy key and known_hosts from the Flux secret K3s would apply (on the
 * encrypted volume), and ask the Git server for its refs the way Flux's source-controller does, with the
 * host key checked strictly. The key stays on the device (a tmpfs directory removed at the end).
 */
function gitProbeScript(url: string): string {
  const m = /^ssh:\/\/([^@]+)@([^/:]+)(?::(\d+))?(\/.*)$/.exec(url)!;
  return `set -eu
d=$(mktemp -d /run/edgeforge-e2e-git.XXXXXX); trap 'rm -rf "$d"' EXIT
${fluxSecretOnDevice(
  '$d',
  `        for k, f in (('identity', 'id'), ('known_hosts', 'kh')):
            p = os.path.join(d, f)
            with open(p, 'wb') as o: o.write(base64.b64decode(doc['data'][k]))
            os.chmod(p, 0o600)`,
)}
[ -f "$d/id" ] || { echo NO_SECRET flux-system; exit 0; }
ssh -F /dev/null -i "$d/id" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$d/kh" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ConnectTimeout=30 ${m[3] ? `-p ${m[3]} ` : ''}${m[1]}@${m[2]} "git-upload-pack '${m[4]}'" </dev/null | head -c 2000
`;
}
