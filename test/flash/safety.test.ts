// Target safety against a fake sysfs/mountinfo tree shaped like a real one (a USB SD reader, the system
// virtio disk, a non-removable USB disk), and against a real loop device when the machine allows one.
import { requireRoot, requireTools, tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blockProblems, describe as describeDev, inspectBlock, type SysEnv } from '../../scripts/flash/safety.ts';
import { runFlash, resolveTarget } from '../../scripts/flash/flash.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { buildOut, cleanupTmp, sha, tmp } from './fixture.ts';
const HAVE_TOOLS = requireTools(['losetup', 'mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/flash/safety.test.ts');

afterAll(cleanupTmp);

function fakeSys(mountinfo: string, swaps = 'Filename Type Size Used Priority\n'): SysEnv {
  const root = tmp('sys');
  const sys = path.join(root, 'sys');
  const put = (p: string, text: string) => {
    mkdirSync(path.dirname(path.join(sys, p)), { recursive: true });
    writeFileSync(path.join(sys, p), text + '\n');
  };
  const link = (devno: string, target: string) => {
    mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
    symlinkSync(path.join(sys, target), path.join(sys, 'dev/block', devno));
  };
  // USB SD card reader: /sys/devices/.../usb1/1-1 (serial) /1-1:1.0/host0/target0:0:0/0:0:0:0 (model) /block/sdb
  const usb = 'devices/pci0000:00/usb1/1-1';
  const scsi = `${usb}/1-1:1.0/host0/target0:0:0/0:0:0:0`;
  put(`${usb}/serial`, '000000001206');
  put(`${scsi}/model`, 'SD/MMC Reader  ');
  put(`${scsi}/vendor`, 'Generic');
  const sdb = `${scsi}/block/sdb`;
  put(`${sdb}/dev`, '8:16');
  put(`${sdb}/removable`, '1');
  put(`${sdb}/size`, String((32 * 1024 ** 3) / 512));
  mkdirSync(path.join(sys, sdb, 'holders'), { recursive: true });
  symlinkSync(path.join(sys, scsi), path.join(sys, sdb, 'device'));
  put(`${sdb}/sdb1/dev`, '8:17');
  put(`${sdb}/sdb1/partition`, '1');
  put(`${sdb}/sdb1/size`, '1048576');
  link('8:16', sdb);
  link('8:17', `${sdb}/sdb1`);
  // the system disk
  const vda = 'devices/pci0000:00/virtio1/block/vda';
  put(`${vda}/dev`, '254:0');
  put(`${vda}/removable`, '0');
  put(`${vda}/size`, String((256 * 1024 ** 3) / 512));
  put(`${vda}/vda1/dev`, '254:1');
  put(`${vda}/vda1/partition`, '1');
  link('254:0', vda);
  link('254:1', `${vda}/vda1`);
  // a small non-removable USB disk
  const sdc = 'devices/pci0000:00/usb2/2-1/block/sdc';
  put(`${sdc}/dev`, '8:32');
  put(`${sdc}/removable`, '0');
  put(`${sdc}/size`, String((8 * 1024 ** 2) / 512));
  link('8:32', sdc);
  writeFileSync(path.join(root, 'mountinfo'), mountinfo);
  writeFileSync(path.join(root, 'swaps'), swaps);
  return { sysRoot: sys, mountinfo: path.join(root, 'mountinfo'), swaps: path.join(root, 'swaps') };
}

const ROOT_MOUNT = '22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n';
const IMAGE = 64 * 1024 * 1024;

describe.runIf(HAVE_TOOLS)('target safety (sysfs)', () => {
  it('accepts a whole removable card and describes it with model, size and serial', async () => {
    const env = fakeSys(ROOT_MOUNT);
    const info = await inspectBlock('/dev/sdb', '8:16', env);
    expect(info).toMatchObject({ name: 'sdb', disk: 'sdb', partition: false, removable: true, size: 32 * 1024 ** 3 });
    expect(await blockProblems(info, { imageSize: IMAGE, forceDevice: false, env })).toEqual([]);
    expect(describeDev(info)).toBe('Generic SD/MMC Reader, 34.4 GB, serial 000000001206, removable');
  });

  it('refuses the system disk even with --force-device', async () => {
    const env = fakeSys(ROOT_MOUNT);
    const p = await blockProblems(await inspectBlock('/dev/vda', '254:0', env), { imageSize: IMAGE, forceDevice: true, env });
    expect(p.join('\n')).toMatch(/system disk/);
    expect(p.join('\n')).toMatch(/is mounted \(\/dev\/vda1 on \/\)/);
  });

  it('refuses a card whose partition is mounted (desktop auto-mount), and one with active swap', async () => {
    const env = fakeSys(ROOT_MOUNT + '40 22 8:17 / /media/tech/system-boot rw,nosuid - vfat /dev/sdb1 rw\n', 'Filename Type Size Used Priority\n/dev/sdb1 partition 1024 0 -2\n');
    const p = await blockProblems(await inspectBlock('/dev/sdb', '8:16', env), { imageSize: IMAGE, forceDevice: true, env });
    expect(p.join('\n')).toMatch(/\/dev\/sdb is mounted \(\/dev\/sdb1 on \/media\/tech\/system-boot\)/);
    expect(p.join('\n')).toMatch(/active swap/);
  });

  it('refuses a partition and a non-removable disk unless --force-device', async () => {
    const env = fakeSys(ROOT_MOUNT);
    const part = await inspectBlock('/dev/sdb1', '8:17', env);
    expect(part).toMatchObject({ partition: true, disk: 'sdb' });
    expect((await blockProblems(part, { imageSize: 4096, forceDevice: false, env })).join()).toMatch(/is a partition .*give the whole card, \/dev\/sdb/);
    expect(await blockProblems(part, { imageSize: 4096, forceDevice: true, env })).toEqual([]);
    const sdc = await inspectBlock('/dev/sdc', '8:32', env);
    expect((await blockProblems(sdc, { imageSize: 4096, forceDevice: false, env })).join()).toMatch(/not a removable device.*--force-device/);
    expect(await blockProblems(sdc, { imageSize: 4096, forceDevice: true, env })).toEqual([]);
  });

  it('refuses a card smaller than the image, even with --force-device', async () => {
    const env = fakeSys(ROOT_MOUNT);
    const sdc = await inspectBlock('/dev/sdc', '8:32', env);
    const p = await blockProblems(sdc, { imageSize: IMAGE, forceDevice: true, env });
    expect(p).toEqual([`/dev/sdc holds ${8 * 1024 ** 2} bytes, smaller than the ${IMAGE}-byte image: use a bigger card`]);
  });
});

function loopDevice(size: number): { dev: string; file: string } {
  const file = path.join(tmp('loop'), 'card.img');
  execFileSync('truncate', ['-s', String(size), file]);
  const dev = execFileSync(tool('losetup'), ['-f', '--show', file], { encoding: 'utf8' }).trim();
  return { dev, file };
}

describe.runIf(HAVE_TOOLS && requireRoot('flashing a real block device (loop devices)'))('a real block device (loop)', () => {
  it('is refused when non-removable or too small, and flashed with --force-device, verified, equal to materialize', async (t) => {
    const out = await buildOut('loop', ['loop-dev-001']);
    const big = loopDevice(out.baseSize + 3 * 1024 * 1024);
    const small = loopDevice(out.baseSize - 1024 * 1024);
    try {
      // a stale partition table at the card's end (an old GPT backup) must not survive
      execFileSync('dd', [`of=${big.dev}`, 'if=/dev/urandom', 'bs=4096', 'count=16', `seek=${(out.baseSize + 3 * 1024 * 1024) / 4096 - 16}`, 'status=none']);
      const refused = await resolveTarget(big.dev, out.baseSize, out.basePath, {});
      expect(refused.problems.join()).toMatch(/not a removable device/);
      const tooSmall = await resolveTarget(small.dev, out.baseSize, out.basePath, { forceDevice: true });
      expect(tooSmall.problems.join()).toMatch(/smaller than the/);
      await expect(runFlash({ outDir: out.outDir, requests: [{ device: 'loop-dev-001', target: big.dev }], forceDevice: true, reporter: new JsonReporter() })).rejects.toThrow(/needs --yes/);
      // in a terminal the technician sees what is about to be erased; "no" writes nothing
      let shown: string[] = [];
      const before = sha(readFileSync(big.file));
      await expect(
        runFlash({
          outDir: out.outDir,
          requests: [{ device: 'loop-dev-001', target: big.dev }],
          forceDevice: true,
          interactive: true,
          confirm: async (l) => ((shown = l), false),
          reporter: new JsonReporter(),
        }),
      ).rejects.toThrow(/not confirmed. Nothing was written/);
      expect(shown).toHaveLength(1);
      expect(shown[0]).toMatch(new RegExp(`^${big.dev} \\(loop\\d+\\): .*${((out.baseSize + 3 * 1024 * 1024) / 1e9).toFixed(1)} GB -> loop-dev-001$`));
      expect(sha(readFileSync(big.file))).toBe(before);
      const r = await runFlash({ outDir: out.outDir, requests: [{ device: 'loop-dev-001', target: big.dev }], forceDevice: true, yes: true, verify: true, reporter: new JsonReporter() });
      expect(r.results[0].status).toBe('ok');
      expect(r.results[0].message).toMatch(/O_DIRECT|BLKFLSBUF/);
      const card = readFileSync(big.file);
      expect(sha(card.subarray(0, out.baseSize))).toBe(sha(await out.materialized('loop-dev-001')));
      expect(card.subarray(out.baseSize).every((b) => b === 0)).toBe(true);
    } finally {
      for (const l of [big, small]) execFileSync(tool('losetup'), ['-d', l.dev]);
    }
  });
});
