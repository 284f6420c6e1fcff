// The boot test's first-boot-service scenarios, sharing the boot test's boots:
//   boot 0 (before boot 1, same image): tang and Git unreachable -> first boot waits and retries (the status
//     file and the console show the attempts); they come back -> it goes on by itself, no reboot; the power is
//     cut (qemu killed) when the k3s step begins, i.e. after the data volume is set up and before K3s is
//     installed. The seed still holds its secrets then (erased only at the end).
//   boot 1 (the existing one) resumes at k3s: checked here from the device's first-boot log — the data volume
//     was formatted once (not again), every step finished, the secrets erased only then.
//   boot P (after the others, a second image of the same device): its K3s binary on the K3s partition corrupted
//     after `image materialize` -> a permanent failure naming both hashes, and no retry after it.
// A test-only knob shortens the retry backoff: `edgeforge.test_backoff=BASE:CAP` on the kernel command line
// (docs/e2e.md); the device's default stays 30 s doubling to 15 min.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { $ } from 'zx';
import { expect, notReached, type Checks } from './checks.ts';
import { FatReader, partitions } from './disk-read.ts';
import { Vm } from './qemu.ts';
import { sshRun, sshWait, type SshTarget } from './ssh.ts';
import { log, stage } from './stage.ts';

$.verbose = false;

/** base 4 s, cap 16 s: "a few backoff periods" fit in a minute under emulation */
export const TEST_BACKOFF = 'edgeforge.test_backoff=4:16';

// the three first-boot scenarios (late network, power cut, permanent failure) each name their checks under one heading
const lateNetwork = (check: string) => `network comes late: ${check}`;
const powerCut = (check: string) => `power cut mid-install: ${check}`;
const permanentFailure = (check: string) => `permanent failure: ${check}`;

export const FIRSTBOOT_CHECKS = {
  late: lateNetwork('first boot waits and retries while tang and Git are unreachable (attempts in the status)'),
  lateDone: lateNetwork('tang and Git back -> first boot goes on by itself, without a reboot'),
  cut: powerCut('qemu killed after the data volume is set up, before K3s is installed'),
  cutSecrets: powerCut('the seed still holds its secrets at the cut (erased only at the end)'),
  resumed: powerCut('the next boot resumes at that step, the data volume is not formatted again, first boot completes'),
  permanent: permanentFailure('a corrupted K3s binary on the K3s partition is reported as permanent, naming both hashes'),
  noRetry: permanentFailure('not retried afterwards; `edgeforge-firstboot status` says so over SSH'),
} as const;

/** A TCP gate in front of a host service: closed (nothing listens, the guest's connections fail) until opened. */
export class Gate {
  private server?: net.Server;
  constructor(
    readonly port: number,
    private readonly target: () => number,
  ) {}
  async open(): Promise<void> {
    if (this.server) return;
    const s = net.createServer((sock) => {
      const up = net.connect(this.target(), '127.0.0.1');
      sock.pipe(up).pipe(sock);
      const end = () => (sock.destroy(), up.destroy());
      sock.on('error', end);
      up.on('error', end);
    });
    await new Promise<void>((resolve) => s.listen(this.port, '127.0.0.1', resolve));
    this.server = s;
  }
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export interface FirstbootE2e {
  image: string;
  work: string;
  /** kernel, initrd, command line of the image; `bios` for an A/B card (UEFI firmware + GRUB) */
  boot: { kernel: string; initrd: string; cmdline: string; bios?: string };
  mac?: string;
  sshPort: number;
  target: SshTarget;
  tang: { guestIp: string; guestPort: number; port: () => number };
  git: { guestIp: string; guestPort: number; port: () => number };
  timeoutMs: number;
  /** the K3s binary this device installs, as a path on the K3s partition (its ring's release): boot P corrupts it */
  airgapBinary?: string;
}

const ATTEMPT_FAILED = /attempt (\d+) at step (\w+) failed: ([^\n]*)/g;

/** boot 0: network late, then the power cut. Returns whether the cut happened where it should. */
export async function bootLateThenCut(checks: Checks, e: FirstbootE2e, freePort: () => Promise<number>): Promise<boolean> {
  const tangGate = new Gate(await freePort(), e.tang.port);
  const gitGate = new Gate(await freePort(), e.git.port);
  const vm = new Vm({
    disks: [{ path: e.image }],
    kernel: e.boot.kernel,
    initrd: e.boot.initrd,
    bios: e.boot.bios,
    append: `${e.boot.cmdline} ${TEST_BACKOFF}`,
    mac: e.mac,
    serialLog: path.join(e.work, 'boot0-serial.log'),
    sshHostPort: e.sshPort,
    qmpSocket: path.join(e.work, 'qmp0.sock'),
    guestfwd: [
      { guestIp: e.tang.guestIp, guestPort: e.tang.guestPort, hostPort: tangGate.port, perConnection: true },
      { guestIp: e.git.guestIp, guestPort: e.git.guestPort, hostPort: gitGate.port, perConnection: true },
    ],
  });
  let cut = false;
  try {
    await stage('boot 0: network comes late', () =>
      checks.run(FIRSTBOOT_CHECKS.late, async () => {
        // two failed attempts (the first one at identity: the sealed secrets need tang)
        const m = await vm.waitFor(/attempt 2 at step (\w+) failed: ([^\n]*)/, e.timeoutMs, 'two failed first-boot attempts while tang is unreachable');
        const attempts = [...vm.console.matchAll(ATTEMPT_FAILED)];
        expect(/tang|unseal/i.test(m[2]), `attempt 2 failed for another reason: ${m[2].slice(0, 300)}`);
        // the status file says so too (SSH may not be up yet: the pinned host key comes with the identity step)
        const st = (await sshWait(e.target, 20)).ok ? (await sshRun(e.target, 'sudo -n edgeforge-firstboot status', 30)).stdout.trim() : '';
        return `${attempts.length} failed attempt(s) at step ${m[1]} (${attempts.map((a) => `#${a[1]}`).join(' ')}), next after the backoff; status: ${st.split('\n')[0] || '(SSH not up yet: the console shows them)'}`;
      }),
    );
    await stage('boot 0: tang and Git back', () =>
      checks.run(FIRSTBOOT_CHECKS.lateDone, async () => {
        if (checks.results.find((x) => x.name === FIRSTBOOT_CHECKS.late)?.outcome !== 'pass') notReached('no failed attempts were seen first');
        const from = vm.console.length;
        const t0 = Date.now();
        await tangGate.open();
        await gitGate.open();
        const m = await vm.waitFor(/edgeforge-firstboot\[identity\]: ok/, 180_000, 'the identity step finishing after tang came back', from);
        expect(!/reboot: Restarting|Reached target.*Reboot/.test(vm.console.slice(from, m.end)), 'the guest rebooted');
        return `identity done ${Math.round((Date.now() - t0) / 1000)} s after tang and Git came back, without a reboot`;
      }),
    );
    await stage('boot 0: power cut at the k3s step', () =>
      checks.run(FIRSTBOOT_CHECKS.cut, async () => {
        if (!vm.running) notReached('the guest is not running');
        await vm.waitFor(/edgeforge-firstboot\[encrypt_data_volume\]: ok/, e.timeoutMs, 'the data volume step finishing');
        await vm.waitFor(/edgeforge-firstboot\[k3s\]: begin/, 300_000, 'the k3s step beginning');
        await vm.kill(); // the power cut: SIGTERM/SIGKILL to qemu, no shutdown in the guest
        cut = true;
        const installed = /K3s \S+ installed/.test(vm.console);
        expect(!installed, 'K3s was already installed at the cut');
        return `qemu killed ${vm.elapsed().toFixed(0)} s after start, as the k3s step began`;
      }),
    );
    await checks.run(FIRSTBOOT_CHECKS.cutSecrets, async () => {
      if (!cut) notReached('no power cut');
      const cidata = (await partitions(e.image)).find((p) => p.name.toUpperCase() === 'CIDATA');
      expect(cidata, 'no CIDATA partition');
      const ud = (await new FatReader(e.image, cidata!).read('user-data'))?.toString('utf8') ?? '';
      // (the stub the erase step writes starts "#cloud-config\n# edgeforge: the one-time secrets …"; the
      // build's user-data carries that text too, inside the first-boot program it writes, so look at the top)
      const stub = /^#cloud-config\n# edgeforge: the one-time secrets/.test(ud);
      expect(!stub && /write_files:/.test(ud) && ud.includes('sealed-secrets.jwe'), `the seed was already erased at the cut (too early: a retried step would need it): ${ud.slice(0, 120)}`);
      return "user-data on CIDATA still the build's (with the sealed secrets)";
    });
  } finally {
    await vm.close();
    await tangGate.close();
    await gitGate.close();
  }
  await fs.writeFile(path.join(e.work, 'boot0-console.txt'), vm.console);
  return cut;
}

/** until the first-boot service says it finished (or stopped for good); logs instead of failing (checks follow) */
export async function waitFirstbootDone(vm: Vm, timeoutMs: number): Promise<void> {
  try {
    const m = await vm.waitFor(/edgeforge-firstboot\[end\]: done|failed permanently[^\n]*/, timeoutMs, 'the first-boot service finishing');
    log(`first boot: ${m[0]} after ${vm.elapsed().toFixed(0)} s`);
  } catch (err) {
    log(`first boot: ${(err as Error).message}`);
  }
}

/** first-boot time per step from the device's log ("TIME [step] begin" .. "TIME [step] ok"), last run of each */
export function stepTimes(firstbootLog: string): { step: string; seconds: number }[] {
  const begins = new Map<string, number>();
  const out = new Map<string, number>();
  for (const m of firstbootLog.matchAll(/^(\S+Z) \[(\w+)\] (begin|ok)\b/gm)) {
    const t = Date.parse(m[1]);
    if (m[3] === 'begin') begins.set(m[2], t);
    else if (begins.has(m[2])) out.set(m[2], (t - begins.get(m[2])!) / 1000);
  }
  return [...out].map(([step, seconds]) => ({ step, seconds }));
}

/** after boot 1: the cut boot resumed at k3s, nothing formatted twice, secrets erased only at the end */
export async function resumedChecks(checks: Checks, cut: boolean, firstbootLog: string | undefined, work: string): Promise<void> {
  await checks.run(FIRSTBOOT_CHECKS.resumed, async () => {
    if (!cut) notReached('no power cut in boot 0');
    if (!firstbootLog) notReached('no first-boot log from boot 1 (SSH failed)');
    const formatted = (firstbootLog!.match(/\] formatted \S+: LUKS2/g) ?? []).length;
    const mkfs = (firstbootLog!.match(/made an ext4 filesystem/g) ?? []).length;
    expect(formatted === 1 && mkfs === 1, `LUKS format ${formatted} time(s), mkfs ${mkfs} time(s) (must be once each)`);
    // the last run started at k3s: identity .. encrypt_data_volume were not run again
    const runs = firstbootLog!.split(/\] device \S+: running /).slice(1);
    const last = runs.length ? runs[runs.length - 1] : '';
    const begun = [...last.matchAll(/\[(\w+)\] begin/g)].map((m) => m[1]);
    expect(begun[0] === 'preflight' && begun[1] === 'k3s', `the resumed run began with ${begun.slice(0, 3).join(', ') || 'nothing'} (want preflight, k3s)`);
    expect(/\[end\] done/.test(last), 'the resumed run did not finish');
    const erase = last.indexOf('[erase_secrets] ok');
    expect(erase > 0 && !runs.slice(0, -1).some((r) => r.includes('[erase_secrets] ok')), 'the secrets were erased before the resumed run (or never)');
    const times = stepTimes(firstbootLog!);
    await fs.writeFile(path.join(work, 'firstboot-step-times.txt'), times.map((t) => `${t.step}\t${t.seconds}`).join('\n') + '\n');
    log(`first-boot time per step (boot 0 + boot 1, last run of each): ${times.map((t) => `${t.step} ${t.seconds}s`).join(', ')}`);
    return `resumed at ${begun.slice(1).join(' → ')}; LUKS formatted once; secrets erased in the resumed run; steps: ${times.map((t) => `${t.step} ${t.seconds}s`).join(', ')}`;
  });
}

/** boot P: a second image of the device, its K3s binary on the K3s partition corrupted */
export async function permanentFailureBoot(checks: Checks, e: FirstbootE2e, materialize: (to: string) => Promise<boolean>): Promise<void> {
  const image = path.join(e.work, 'corrupt-k3s.img');
  const vmOpts = {
    disks: [{ path: image }],
    kernel: e.boot.kernel,
    initrd: e.boot.initrd,
    bios: e.boot.bios,
    append: `${e.boot.cmdline} ${TEST_BACKOFF}`,
    mac: e.mac,
    serialLog: path.join(e.work, 'bootP-serial.log'),
    sshHostPort: e.sshPort,
    qmpSocket: path.join(e.work, 'qmpP.sock'),
    guestfwd: [
      { guestIp: e.tang.guestIp, guestPort: e.tang.guestPort, hostPort: e.tang.port(), perConnection: true },
      { guestIp: e.git.guestIp, guestPort: e.git.guestPort, hostPort: e.git.port(), perConnection: true },
    ],
  };
  let vm: Vm | undefined;
  try {
    await stage('boot P: corrupted K3s partition', () =>
      checks.run(FIRSTBOOT_CHECKS.permanent, async () => {
        if (!(await materialize(image))) notReached('image materialize failed for the second image');
        const k3s = (await partitions(image)).find((p) => p.name === 'edgeforge-k3s');
        expect(k3s, 'no edgeforge-k3s partition');
        const binPath = e.airgapBinary ?? 'k3s-arm64';
        const bin = await new FatReader(image, k3s!).read(binPath);
        expect(bin && bin.length > 0, `no ${binPath} on the partition`);
        const bad = Buffer.from(bin!);
        bad[bad.length - 2] ^= 0xff;
        const f = path.join(e.work, 'k3s-arm64.corrupt');
        await fs.writeFile(f, bad);
        await $`mcopy -o -i ${`${image}@@${k3s!.start}`} ${f} ${`::/${binPath}`}`;
        vm = new Vm(vmOpts);
        const m = await vm.waitFor(
          /FAILED \(permanent, not retried\): K3s airgap binary: \S+ has sha256 ([0-9a-f]{64}) but edgeforge pinned ([0-9a-f]{64})/,
          e.timeoutMs,
          'the permanent failure at the k3s step',
        );
        expect(m[1] !== m[2], 'the two hashes are the same');
        await vm.waitFor(/failed permanently/, 60_000, 'the service saying it stops retrying');
        return `sha256 ${m[1].slice(0, 12)}… vs pinned ${m[2].slice(0, 12)}…, after ${vm.elapsed().toFixed(0)} s`;
      }),
    );
    await stage('boot P: no retry', () =>
      checks.run(FIRSTBOOT_CHECKS.noRetry, async () => {
        if (!vm?.running) notReached('the guest is not running');
        const from = vm.console.length;
        // with the test backoff (cap 16 s) a retry would come within this
        await new Promise((r) => setTimeout(r, 60_000));
        expect(!/edgeforge-firstboot\[k3s\]: begin/.test(vm.console.slice(from)), 'the k3s step began again after the permanent failure');
        const w = await sshWait(e.target, 120);
        expect(w.ok, `no SSH login (the device must stay reachable): ${w.lastError}`);
        const st = await sshRun(e.target, 'sudo -n edgeforge-firstboot status; systemctl is-active edgeforge-firstboot.service', 60);
        expect(/FAILED PERMANENTLY at step k3s/.test(st.stdout), `status: ${st.stdout.trim().slice(0, 300)}`);
        return `no k3s attempt in 60 s; ${st.stdout.trim().split('\n').slice(0, 2).join(' | ')}`;
      }),
    );
  } finally {
    await vm?.close();
    await fs.rm(image, { force: true });
  }
}
