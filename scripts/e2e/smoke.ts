// The base on its own: boot it with a plain NoCloud seed the test writes itself, let cloud-init run it and
// power off, then read the disk. Passing here and failing later points at edgeforge, not at the base.
import path from 'node:path';
import type { BaseImageInfo } from './base-image.ts';
import { Checks, expect } from './checks.ts';
import { bootFiles, Ext4Reader, partitions } from './disk-read.ts';
import { Vm, NotReached } from './qemu.ts';
import { copyImage, makeSeedImage } from './seed.ts';
import { log, stage } from './stage.ts';

export const SMOKE_CHECKS = [
  'base: kernel boots to systemd',
  'base: cloud-init ran the NoCloud seed',
  'base: guest powered off by itself',
  'base: seed applied on disk (hostname, file, machine-id, host keys)',
];

const MARK = 'edgeforge-e2e-smoke';

export async function smokeBase(checks: Checks, base: BaseImageInfo, work: string, timeouts: { bootMs: number; finishMs: number }): Promise<boolean> {
  checks.declare(...SMOKE_CHECKS);
  const disk = path.join(work, 'smoke.img');
  const seed = path.join(work, 'smoke-seed.img');
  await copyImage(base.path, disk);
  await makeSeedImage(seed, {
    'meta-data': `instance-id: ${MARK}-001\nlocal-hostname: ${MARK}\n`,
    'user-data': [
      '#cloud-config',
      `hostname: ${MARK}`,
      'write_files:',
      `  - path: /var/lib/${MARK}/marker`,
      '    content: "written by the smoke seed\\n"',
      'runcmd:',
      `  - [sh, -c, "echo ${MARK}: runcmd ran as $(id -un) on $(uname -m)"]`,
      'power_state:',
      '  mode: poweroff',
      '  delay: now',
      '  timeout: 60',
      '',
    ].join('\n'),
  });
  const boot = await bootFiles(disk, work);
  const vm = new Vm({ disks: [{ path: disk }, { path: seed, readonly: true }], kernel: boot.kernel, initrd: boot.initrd, append: boot.cmdline, serialLog: path.join(work, 'smoke-serial.log') });
  let finished = false;
  try {
    await stage('smoke: boot to systemd', async () => {
      await checks.run('base: kernel boots to systemd', async () => {
        await vm.waitFor(/systemd\[1\]: .*|Welcome to .*Debian/, timeouts.bootMs, 'systemd start');
        return `after ${vm.elapsed().toFixed(0)}s`;
      });
    });
    await stage('smoke: cloud-init', async () => {
      finished = await checks.run('base: cloud-init ran the NoCloud seed', async () => {
        await vm.waitFor(new RegExp(`${MARK}: runcmd ran as root on aarch64`), timeouts.finishMs, "the seed's runcmd output");
        // the whole line, up to its newline: the serial log arrives in chunks, and a match on a half-written line
        // once read the datasource as "Da"
        const m = await vm.waitFor(/Cloud-init v\. \S+ finished at [^\n]*Datasource (\S+)[^\n]*\n/, timeouts.finishMs, 'cloud-init finished');
        expect(/NoCloud/.test(m[1]), `cloud-init finished with datasource ${m[1]}, not NoCloud`);
        return `finished after ${vm.elapsed().toFixed(0)}s (${m[1]})`;
      });
    });
    await stage('smoke: power off', async () => {
      await checks.run('base: guest powered off by itself', async () => {
        if (!finished) throw new NotReached('cloud-init did not finish');
        const code = await vm.waitExit(120_000);
        expect(code === 0, `qemu exited with ${code}`);
        return `qemu exited after ${vm.elapsed().toFixed(0)}s`;
      });
    });
  } finally {
    await vm.close();
  }
  const clean = vm.exitCode === 0 && finished;
  await stage('smoke: read disk', async () => {
    await checks.run('base: seed applied on disk (hostname, file, machine-id, host keys)', async () => {
      if (!clean) throw new NotReached('no clean power-off, so the disk cannot be read reliably');
      const root = (await partitions(disk)).find((p) => p.number === base.root.number)!;
      const fs = await Ext4Reader.open(disk, root);
      try {
        const hostname = (await fs.text('/etc/hostname'))?.trim();
        expect(hostname === MARK, `/etc/hostname is ${JSON.stringify(hostname)}`);
        expect((await fs.text(`/var/lib/${MARK}/marker`)) === 'written by the smoke seed\n', `/var/lib/${MARK}/marker missing or wrong`);
        expect(await fs.exists('/var/lib/cloud/instance/boot-finished'), 'no /var/lib/cloud/instance/boot-finished');
        const mid = (await fs.text('/etc/machine-id'))?.trim() ?? '';
        expect(/^[0-9a-f]{32}$/.test(mid), `machine-id not generated on first boot: ${JSON.stringify(mid)}`);
        const keys = ((await fs.ls('/etc/ssh')) ?? []).filter((n) => n.startsWith('ssh_host_'));
        expect(keys.length > 0, 'no SSH host keys generated on first boot');
        const result = JSON.parse((await fs.text('/var/lib/cloud/data/result.json')) ?? '{}');
        const errors = result?.v1?.errors ?? ['no result.json'];
        expect(errors.length === 0, `cloud-init reported errors: ${JSON.stringify(errors)}`);
        return `hostname ${hostname}, machine-id set, ${keys.length / 2} host key pair(s), cloud-init result without errors`;
      } finally {
        await fs.close();
      }
    });
  });
  log(`smoke serial log: ${path.join(work, 'smoke-serial.log')}`);
  return clean;
}
