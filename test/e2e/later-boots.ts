// Boots 2 and 3 of the boot test. Boot 2, with tang: the data volume must open AT BOOT through tang (boot 1
// opened it with the key it had just made). Boot 3, without tang: the stolen device, the volume must stay locked
// and K3s wait, until tang comes back and the volume unlocks by itself.
import path from 'node:path';
import { expect, notReached } from '../../scripts/e2e/checks.ts';
import { TANG_GUEST } from '../../scripts/e2e/fleet.ts';
import { Vm } from '../../scripts/e2e/qemu.ts';
import { powerOff } from '../../scripts/e2e/power.ts';
import { sshRun, sshWait, type SshTarget } from '../../scripts/e2e/ssh.ts';
import { stage } from '../../scripts/e2e/stage.ts';
import { startTang } from '../../scripts/e2e/tang.ts';
import { BOOT_TIMEOUT, C, type Built, type Run } from './context.ts';
import type { Device } from './boot1.ts';

/** Boot `n` with or without tang, after a boot that ended in a clean power-off (`prev`); true when this one did too. */
export async function laterBoot(run: Run, built: Built, dev: Device, n: 2 | 3, withTang: boolean, prev: boolean): Promise<boolean> {
  const { checks } = run;
  const { target } = dev;
  const name = withTang ? C.reboot : C.boot2;
  const label = withTang ? `boot ${n} (tang)` : `boot ${n} (no tang)`;
  if (!prev) {
    for (const c of withTang ? [C.reboot, C.bootUnlock, C.poweroffReboot] : [C.boot2, C.locked, C.lateUnlock, C.poweroff2]) checks.notReached(c, 'the previous boot did not end in a clean power-off');
    return false;
  }
  const reqBefore = run.tang!.requests.length;
  const tangPort = run.tang!.port;
  if (!withTang) await run.tang!.close(); // the stolen device: its tang server is out of reach
  const vm = laterVm(run, built, dev, n, withTang, tangPort);
  let up = false;
  let off = false;
  try {
    await stage(`${label}: up`, () =>
      checks.run(name, async () => {
        await vm.waitFor(/Cloud-init v\. \S+ finished at|login:/, BOOT_TIMEOUT, 'boot finished (cloud-init final or a login prompt)');
        const w = await sshWait(target, 180);
        expect(w.ok, `no SSH login with the pinned key: ${w.lastError}`);
        up = true;
        return `up after ${vm.elapsed().toFixed(0)}s`;
      }),
    );
    await stage(`${label}: volume state`, () => volumeState(run, dev, withTang, up, reqBefore));
    if (!withTang) {
      await stage(`boot ${n} (tang back): late unlock`, () =>
        checks.run(C.lateUnlock, async () => {
          if (checks.results.find((x) => x.name === C.locked)?.outcome !== 'pass') notReached('the volume was not seen locked first');
          // the site's tang server comes back (same keys, same port): the unlock service's next retry must open
          // the volume, systemd must mount it and the binds, and K3s must start, with nobody logging in
          run.tang = await startTang(run.tangDir, tangPort);
          const t0 = Date.now();
          const m = await waitMounted(target, 480, true);
          expect(m.ok, `within ${Math.round((Date.now() - t0) / 1000)} s of tang's return: ${m.state}`);
          return `${Math.round((Date.now() - t0) / 1000)} s after tang came back: ${m.state}`;
        }),
      );
    }
    await stage(`${label}: power off`, () =>
      checks.run(withTang ? C.poweroffReboot : C.poweroff2, async () => {
        if (!vm.running) notReached(`the guest already stopped (qemu exit ${vm.exitCode})`);
        await powerOff(vm, up ? target : undefined);
        expect(vm.exitCode === 0, `qemu exit ${vm.exitCode}`);
        off = true;
        return `off after ${vm.elapsed().toFixed(0)}s`;
      }),
    );
  } finally {
    await vm.close();
  }
  return off;
}

/** the boot's VM; boot 3: the route to tang exists, nothing answers until the server comes back */
function laterVm(run: Run, built: Built, dev: Device, n: 2 | 3, withTang: boolean, tangPort: number): Vm {
  const { work } = run;
  const { boot, mac, sshPort } = dev;
  return new Vm({
    disks: [{ path: built.image }],
    kernel: boot.kernel,
    initrd: boot.initrd,
    bios: boot.bios,
    append: boot.cmdline,
    mac,
    serialLog: path.join(work, `boot${n}-serial.log`),
    sshHostPort: sshPort,
    qmpSocket: path.join(work, `qmp${n}.sock`),
    // boot 3: the route to tang exists, nothing answers (socat per connection finds the port closed) until
    // the server comes back
    guestfwd: [{ guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: tangPort, perConnection: !withTang }],
  });
}

/** with tang: the volume opened at boot through tang and the binds followed; without: locked, K3s waiting */
function volumeState(run: Run, dev: Device, withTang: boolean, up: boolean, reqBefore: number): Promise<boolean> {
  const { checks } = run;
  const { target } = dev;
  return checks.run(withTang ? C.bootUnlock : C.locked, async () => {
    if (!up) notReached('the device did not come up');
    if (checks.results.find((x) => x.name === C.luks)?.outcome !== 'pass') notReached('no data volume was made on boot 1');
    // the unlock service may still be running just after login
    let open = '';
    for (let i = 0; i < (withTang ? 12 : 1); i++) {
      const r = await sshRun(target, 'sudo -n dmsetup ls --target crypt', 60);
      expect(r.code === 0, `dmsetup failed: ${r.stderr.trim()}`);
      open = /No devices found/i.test(r.stdout) ? '' : r.stdout.trim();
      if (open || !withTang) break;
      await new Promise((res) => setTimeout(res, 5000));
    }
    const rec = run.tang!.requests.slice(reqBefore).filter((x) => x.startsWith('POST /rec/')).length;
    if (withTang) {
      expect(open, 'no dm-crypt mapping open although tang was reachable');
      expect(rec > 0, 'the volume is open but tang saw no recovery request');
      const m = await waitMounted(target, 120);
      expect(m.ok, `the volume is open but the bind mounts did not follow: ${m.state}`);
      return `${open.split(/\s+/)[0]} opened at boot with ${rec} tang recovery request(s); ${m.state}`;
    }
    expect(!open, `a dm-crypt mapping is open without tang: ${open}`);
    // the unlock service writes its status as it starts; under emulation that can be after SSH is up
    let k = { stdout: '' };
    for (let i = 0; i < 12; i++) {
      k = await sshRun(target, 'systemctl is-active k3s.service; findmnt -n -o SOURCE /var/lib/rancher || echo "/var/lib/rancher: not mounted"; cat /run/edgeforge/data-volume.status 2>&1', 30);
      if (/locked since/.test(k.stdout)) break;
      await new Promise((res) => setTimeout(res, 5000));
    }
    expect(!/^active$/m.test(k.stdout), `k3s.service is active while the volume is locked (it must wait): ${k.stdout.trim()}`);
    expect(/locked since/.test(k.stdout), `no degraded-mode status in /run/edgeforge/data-volume.status: ${k.stdout.trim()}`);
    return `no dm-crypt mapping open; ${k.stdout.trim().split('\n').join('; ')}`;
  });
}

/** until the data volume is mounted with its binds (and, with `k3s`, K3s is active) or `sec` pass */
async function waitMounted(target: SshTarget, sec: number, k3s = false): Promise<{ ok: boolean; state: string }> {
  const end = Date.now() + sec * 1000;
  let state = '';
  for (;;) {
    const r = await sshRun(
      target,
      'echo "rancher: $(findmnt -n -o SOURCE /var/lib/rancher || echo not mounted)"; echo "secrets: $(findmnt -n -o SOURCE /var/lib/edgeforge/secrets || echo not mounted)"; echo "k3s: $(systemctl is-active k3s.service)"',
      40,
    );
    state = r.stdout.trim().split('\n').join('; ') || r.stderr.trim();
    const binds = /rancher: \S*edgeforge-data\S*\[\/rancher\]/.test(state) && /secrets: \S*edgeforge-data\S*\[\/edgeforge-secrets\]/.test(state);
    if (binds && (!k3s || /k3s: active/.test(state))) return { ok: true, state };
    if (Date.now() > end) return { ok: false, state };
    await new Promise((res) => setTimeout(res, 10_000));
  }
}
