// One qemu-system-aarch64 guest: the virt board, the disk image as a virtio disk, the kernel/initrd/command
// line passed directly, the serial console captured to a log file and watched for markers with timeouts.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import { log } from './stage.ts';
import { setGrubArgs } from './ab.ts';

export interface GuestFwd {
  /** address and port the guest connects to (inside qemu's 10.0.2.0/24 user network) */
  guestIp: string;
  guestPort: number;
  /** where qemu connects on the host */
  hostPort: number;
  /**
   * one host connection per guest connection (socat run by qemu for each), made when the guest connects: the
   * host side may be down at boot and come back later. Without it qemu opens one connection at start.
   */
  perConnection?: boolean;
}

export interface VmOptions {
  disks: { path: string; readonly?: boolean }[];
  kernel: string;
  initrd: string;
  /** kernel arguments; with `bios` the extra ones, set in the card's GRUB environment (scripts/e2e/ab.ts) */
  append: string;
  /** boot through this UEFI firmware (an A/B card: GRUB picks the slot) instead of -kernel/-initrd */
  bios?: string;
  serialLog: string;
  memMiB?: number;
  /** host port forwarded to the guest's SSH port 22 */
  sshHostPort?: number;
  guestfwd?: GuestFwd[];
  /** the NIC's MAC (the device's, so a network-config matching on it applies) */
  mac?: string;
  /** a QMP socket path, for an ACPI-less power button press (system_powerdown) */
  qmpSocket?: string;
  /**
   * restrict=on: the guest reaches nothing through qemu's user network (no NAT to the host or beyond) except
   * the explicit forwards (guestfwd, hostfwd): the airgap scenario's "no route but to the stand-ins"
   */
  restrict?: boolean;
  /** extra qemu arguments */
  extra?: string[];
}

/** A marker that did not appear: the step it belongs to was not reached (as opposed to a check that failed). */
export class NotReached extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReached';
  }
}

export class Vm {
  readonly proc: ChildProcess;
  private serial = '';
  private out: WriteStream;
  private exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;
  private waiters = new Set<() => void>();
  readonly startedAt = performance.now();

  constructor(readonly opts: VmOptions) {
    const net = [`user,id=n0`, 'ipv6=off'];
    if (opts.restrict) net.push('restrict=on');
    if (opts.sshHostPort) net.push(`hostfwd=tcp:127.0.0.1:${opts.sshHostPort}-:22`);
    for (const g of opts.guestfwd ?? []) {
      net.push(g.perConnection ? `guestfwd=tcp:${g.guestIp}:${g.guestPort}-cmd:socat STDIO TCP:127.0.0.1:${g.hostPort}` : `guestfwd=tcp:${g.guestIp}:${g.guestPort}-tcp:127.0.0.1:${g.hostPort}`);
    }
    const args = [
      '-M',
      'virt',
      '-cpu',
      'cortex-a57',
      '-smp',
      '1',
      '-m',
      String(opts.memMiB ?? 2048),
      '-nographic',
      '-monitor',
      'none',
      '-serial',
      'stdio',
      '-no-reboot',
      ...(opts.bios ? ['-bios', opts.bios] : ['-kernel', opts.kernel, '-initrd', opts.initrd, '-append', opts.append]),
      // (romfile= : no PXE option ROM, the kernel is passed directly; saves the ipxe-qemu package)
      // without a hardware RNG the guest blocks on entropy (sshd, python) for minutes under emulation
      '-device',
      'virtio-rng-pci',
      '-netdev',
      net.join(','),
      '-device',
      `virtio-net-pci,netdev=n0,romfile=${opts.mac ? `,mac=${opts.mac}` : ''}`,
    ];
    if (opts.qmpSocket) args.push('-qmp', `unix:${opts.qmpSocket},server=on,wait=off`);
    opts.disks.forEach((d, i) => args.push('-drive', `file=${d.path},format=raw,if=virtio,index=${i}${d.readonly ? ',readonly=on' : ''}`));
    args.push(...(opts.extra ?? []));
    // an A/B card takes its extra kernel arguments (or none) from GRUB's environment: set before it boots
    if (opts.bios) setGrubArgs(opts.disks[0].path, opts.append);
    this.out = createWriteStream(opts.serialLog);
    log(`qemu-system-aarch64 ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
    this.proc = spawn('qemu-system-aarch64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer) => {
      this.out.write(d);
      this.serial += d.toString('utf8');
      for (const w of this.waiters) w();
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (e) => {
        this.serial += `\n[qemu could not start: ${e.message}]\n`;
        this.exitCode = null;
        resolve(null);
      });
      this.proc.on('exit', (code) => {
        this.exitCode = code;
        for (const w of this.waiters) w();
        resolve(code);
      });
    });
  }

  get console(): string {
    return this.serial;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  elapsed(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  /** Waits for a regex on the serial console (searched from `from`); NotReached on timeout or exit. */
  waitFor(re: RegExp, timeoutMs: number, what: string, from = 0): Promise<RegExpMatchArray & { end: number }> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const check = () => {
        const m = this.serial.slice(from).match(re);
        if (m) {
          done();
          resolve(Object.assign(m, { end: from + (m.index ?? 0) + m[0].length }));
        } else if (!this.running) {
          done();
          reject(new NotReached(`${what}: the guest stopped (qemu exit ${this.exitCode}) before it appeared on the console`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      timer = setTimeout(() => {
        done();
        reject(new NotReached(`${what}: not seen on the console within ${Math.round(timeoutMs / 1000)}s`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for qemu to exit (the guest powered off: -no-reboot turns a reboot into an exit too). */
  async waitExit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const r = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    if (r === 'timeout') throw new NotReached(`the guest did not power off within ${Math.round(timeoutMs / 1000)}s`);
    return r;
  }

  /** Presses the virt board's power button (GPIO key) through QMP; the guest's logind powers off. */
  async powerButton(): Promise<boolean> {
    const sock = this.opts.qmpSocket;
    if (!sock || !this.running) return false;
    return new Promise((resolve) => {
      const c = net.createConnection(sock);
      let buf = '';
      let sent = 0;
      const finish = (ok: boolean) => {
        c.destroy();
        resolve(ok);
      };
      c.on('data', (d) => {
        buf += d.toString();
        if (sent === 0 && buf.includes('"QMP"')) {
          c.write('{"execute":"qmp_capabilities"}\n');
          sent = 1;
        } else if (sent === 1 && buf.includes('"return"')) {
          c.write('{"execute":"system_powerdown"}\n');
          sent = 2;
          buf = '';
        } else if (sent === 2 && buf.includes('"return"')) finish(true);
      });
      c.on('error', () => finish(false));
      setTimeout(() => finish(false), 10_000);
    });
  }

  /** Last resort: the disk is then not cleanly unmounted (debugfs does not replay the journal). */
  async kill(): Promise<void> {
    if (this.running) {
      this.proc.kill('SIGTERM');
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
      if (this.running) this.proc.kill('SIGKILL');
    }
    await this.exited;
    await new Promise<void>((r) => this.out.end(() => r()));
  }

  async close(): Promise<void> {
    await this.kill();
  }
}
