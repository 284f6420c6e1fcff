// OS updates in the boot test (docs/os-updates.md): the device's card is A/B (the test fleet lists its profile in
// os.profiles) and boots through the UEFI firmware and GRUB from the start, so every boot before this one
// already ran on slot A. Three releases are made from the base: e2e-1 (the base itself, what the card starts
// on), e2e-2 (the base plus a marker file) and e2e-3 (the marker, and no /usr/sbin/nft: the firewall unit fails,
// so its health check does). The site cache is an HTTP server on the host; the test publishes the canary ring's
// pointer (`edgeforge os publish`) and starts the device's own update service, as its timer would.
//   boot 4  on e2e-1: the ring moves to e2e-2; the service installs it into slot B and reboots
//   boot 5  slot B, e2e-2: healthy, marked good; the ring moves to e2e-3; installed into slot A, reboot
//   boot 6  slot A, e2e-3: the health check fails, slot A is marked bad, the device reboots by itself
//   boot 7  slot B, e2e-2 again: the rollback is in its status report; the update starts again and the power is
//           cut while RAUC writes slot A
//   boot 8  slot B, e2e-2: the cut install left the device as it was
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { isMap, parseDocument } from 'yaml';
import { Checks, expect, notReached } from './checks.ts';
import { FIRMWARE, readGrubEnv } from './ab.ts';
import { SITE } from './fleet.ts';
import { Vm, type GuestFwd } from './qemu.ts';
import { sshRun, sshWait, type SshTarget } from './ssh.ts';
import { log, stage } from './stage.ts';
import { powerOff } from './power.ts';
import type { OsSource } from './os-source.ts';
import type { E2eStatus } from './status.ts';
import { OS_UPDATE } from '../device/layout.ts';

/** the shared OS state as the device reads it (the current of its two records) */
const STATE = `sudo -n ${OS_UPDATE.program} state`;

$.verbose = false;

export const OS_GUEST = { ip: '10.0.2.103', port: 80 };
export const RELEASES = { v1: 'e2e-1', v2: 'e2e-2', bad: 'e2e-3' } as const;
const MARKER = '/etc/edgeforge-e2e-release';

export const OS_CHECKS = {
  bundles: 'os: bundles of three releases made from the base (edgeforge os bundle), signed, verified by rauc',
  layout: 'os: the card boots through GRUB on slot A (rauc.slot=A) with the release it was built from, RAUC sees both slots',
  timer: "os: the updater's timer is set in the site's maintenance window",
  install: 'os (v1 → v2): in its window the device fetches the signed pointer and the bundle, RAUC installs it into slot B, the device reboots into it',
  good: 'os (v1 → v2): slot B boots v2, passes its health check and is marked good; identity, data volume and K3s carried over',
  statusGood: 'os (v1 → v2): the status report says slot B and v2',
  bad: 'os (v2 → v3, unhealthy): its trial boot fails the health check, the slot is marked bad and the device reboots by itself',
  back: 'os (v2 → v3, unhealthy): the device is back on v2 in slot B and reports the rollback; edgeforge status shows it',
  cut: 'os (power cut during install): the device boots the release it ran before, and says the install was cut short',
};

type Cli = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface OsReleases {
  keys: string;
  /** os.releases entries, paths absolute */
  releases: Record<string, { file: string; sha256: string; baseImageSha256: string }>;
}

/**
 * The three bundles, made with the fleet's (test) OS-update key in their own keystore (`keys`); the inventory
 * given is only read for the fleet's name (the bundles' compatible string). Run beside the first boots.
 */
export async function makeOsReleases(o: { work: string; base: string; inventory: string; edgeforge: Cli }): Promise<OsReleases> {
  const dir = path.join(o.work, 'os-releases');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  const keys = path.join(dir, 'keys');
  const k = await o.edgeforge(['keys', 'init', '--example-admin', '--keys', keys, '-i', o.inventory]);
  if (k.code !== 0) throw new Error(`keys init: ${k.stderr.trim()}`);
  const rootOffset = Number(JSON.parse((await $`sfdisk -J ${o.base}`).stdout).partitiontable.partitions[1].start) * 512;
  const variant = async (name: string, edits: string[]) => {
    const img = path.join(dir, `${name}.img`);
    await $`cp --sparse=always ${o.base} ${img}`;
    const rel = path.join(dir, `${name}.release`);
    await fs.writeFile(rel, `${name}\n`);
    for (const cmd of [`write ${rel} ${MARKER}`, ...edits]) await $`debugfs -w -R ${cmd} ${`${img}?offset=${rootOffset}`}`;
    return img;
  };
  const images: [string, string][] = [
    [RELEASES.v1, o.base],
    [RELEASES.v2, await variant(RELEASES.v2, [])],
    [RELEASES.bad, await variant(RELEASES.bad, ['rm /usr/sbin/nft'])],
  ];
  const releases: OsReleases['releases'] = {};
  for (const [version, img] of images) {
    const r = await o.edgeforge(['os', 'bundle', '-i', o.inventory, '--keys', keys, '--base-image', img, '--version', version, '--to', path.join(dir, 'bundles'), '--json']);
    if (r.code !== 0) throw new Error(`os bundle ${version}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const b = JSON.parse(r.stdout) as { file: string; sha256: string; baseImageSha256: string };
    releases[version] = { file: b.file, sha256: b.sha256, baseImageSha256: b.baseImageSha256 };
    // the variant images are only the bundles' sources
    if (img !== o.base) await fs.rm(img, { force: true });
  }
  return { keys, releases };
}

/**
 * The test inventory with OS updates: the device's profile on A/B cards, the stable ring on e2e-1 and the
 * canary ring (its site) on `canary`, the site cache at OS_GUEST, and the site's maintenance window open all
 * day (the test starts the update service when it chooses; the service itself checks the window).
 */
export async function setOsInventory(inventory: string, r: OsReleases, canary: string): Promise<void> {
  const doc = parseDocument(await fs.readFile(inventory, 'utf8'));
  const dir = path.dirname(inventory);
  const releases = Object.fromEntries(Object.entries(r.releases).map(([v, b]) => [v, { 'uefi-gpt': { file: path.relative(dir, b.file), sha256: b.sha256, baseImageSha256: b.baseImageSha256 } }]));
  doc.set('os', doc.createNode({ version: RELEASES.v1, canaryVersion: canary, profiles: ['ipc-4g'], source: { url: `http://${OS_GUEST.ip}/` }, releases }));
  const site = doc.getIn(['regions', SITE[0], 'sites', SITE[1]]);
  if (!isMap(site)) throw new Error(`${inventory}: no site ${SITE.join('/')}`);
  site.set('maintenanceWindow', doc.createNode({ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '23:59', timeZone: 'Etc/UTC' }));
  await fs.writeFile(inventory, doc.toString());
}

/** Copies the OS-update key's certificate (and its encrypted private part) into the build's keystore. */
export async function shareOsKey(r: OsReleases, buildKeys: string): Promise<void> {
  await fs.mkdir(path.join(buildKeys, 'os-update'), { recursive: true });
  for (const f of ['signing-cert.pem', 'signing-key.private.enc.asc']) await fs.copyFile(path.join(r.keys, 'os-update', f), path.join(buildKeys, 'os-update', f));
}

export interface OsE2e {
  image: string;
  work: string;
  mac?: string;
  sshPort: number;
  target: SshTarget;
  timeoutMs: number;
  forwards: () => GuestFwd[];
  source: OsSource;
  inventory: string;
  releases: OsReleases;
  out: string;
  device: string;
  status?: E2eStatus;
  statusCli: () => Promise<{ code: number; stdout: string; stderr: string }>;
  edgeforge: Cli;
}

/** the ring moves: the inventory's canary release, and the pointers the site cache serves */
async function publish(e: OsE2e, canary: string): Promise<void> {
  await setOsInventory(e.inventory, e.releases, canary);
  const r = await e.edgeforge(['os', 'publish', '-i', e.inventory, '--keys', e.releases.keys, '--to', e.source.dir]);
  if (r.code !== 0) throw new Error(`os publish: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
}

function bootVm(e: OsE2e, n: number): Vm {
  return new Vm({
    disks: [{ path: e.image }],
    kernel: '',
    initrd: '',
    bios: FIRMWARE,
    append: '',
    mac: e.mac,
    serialLog: path.join(e.work, `boot${n}-serial.log`),
    sshHostPort: e.sshPort,
    qmpSocket: path.join(e.work, `qmp${n}.sock`),
    guestfwd: e.forwards(),
  });
}

async function up(vm: Vm, e: OsE2e): Promise<void> {
  await vm.waitFor(/Cloud-init v\. \S+ finished at|login:/, e.timeoutMs, 'boot finished (cloud-init final or a login prompt)');
  const w = await sshWait(e.target, 240);
  expect(w.ok, `no SSH login with the pinned key: ${w.lastError}`);
}

const slotOf = (vm: Vm) => /Kernel command line:[^\n]*rauc\.slot=([AB])/.exec(vm.console)?.[1];
const ssh = async (e: OsE2e, cmd: string, sec = 60) => (await sshRun(e.target, cmd, sec)).stdout.trim();

/** the update service, started as its timer starts it; the guest reboots (qemu exits) when it installed */
async function runUpdate(vm: Vm, e: OsE2e, version: string, slot: string): Promise<string> {
  const from = vm.console.length;
  await sshRun(e.target, 'sudo -n systemctl start --no-block edgeforge-os-update.service', 30);
  await vm.waitFor(new RegExp(`installing ${version} into slot ${slot}`), 10 * 60_000, `the updater installing ${version}`, from);
  const t0 = Date.now();
  await vm.waitFor(new RegExp(`rebooting into slot ${slot} for its trial boot`), 30 * 60_000, 'the updater rebooting into the new slot', from);
  await vm.waitExit(180_000);
  return `RAUC install + carry-over ${Math.round((Date.now() - t0) / 1000)} s`;
}

type OsReport = NonNullable<NonNullable<E2eStatus['received'][number]['report']>['os']>;

/**
 * What the broker holds for the device, read the operator's way (`edgeforge status --json`, the retained report):
 * the host's own subscriber is gone by now (the broker ties a client id to the admin user, and `edgeforge status`
 * logs in as that user). One report is asked for at once (the service its timer starts), then the reports the
 * timer sends are read until `sec` runs out.
 */
async function statusSays(e: OsE2e, pred: (os: OsReport) => boolean, sec: number): Promise<{ ok: boolean; last?: OsReport }> {
  const end = Date.now() + sec * 1000;
  await sshRun(e.target, 'sudo -n systemctl start --no-block edgeforge-status.service', 30).catch(() => {});
  let last: OsReport | undefined;
  while (Date.now() < end) {
    const r = await e.statusCli();
    try {
      const doc = JSON.parse(r.stdout) as { devices?: { id: string; report?: { os?: OsReport } }[] };
      last = doc.devices?.find((d) => d.id === e.device)?.report?.os ?? last;
    } catch {
      // not JSON: no answer from the broker this time; asked again below
    }
    if (last && pred(last)) return { ok: true, last };
    await new Promise((res) => setTimeout(res, 10_000));
  }
  return { ok: false, last };
}

/** one boot of the card: `fn` runs while the guest is up; the guest is gone (stopped or killed) afterwards */
async function withBoot<T>(e: OsE2e, n: number, fn: (vm: Vm) => Promise<T>): Promise<T> {
  const vm = bootVm(e, n);
  try {
    return await fn(vm);
  } finally {
    await vm.close();
  }
}

/** Boots 4-8: an update, an unhealthy release rolled back, a power cut during the install. */
export async function osUpdateScenario(checks: Checks, e: OsE2e, prevOff: boolean): Promise<void> {
  if (!prevOff) {
    checks.skipRest('os (', 'the previous boot did not end in a clean power-off');
    for (const c of [OS_CHECKS.layout, OS_CHECKS.timer]) checks.notReached(c, 'the previous boot did not end in a clean power-off');
    return;
  }
  if (!(await withBoot(e, 4, (vm) => onSlotA(checks, e, vm)))) return checks.skipRest('os (', 'the first update did not install');
  const good = await withBoot(e, 5, (vm) => trialOfV2(checks, e, vm));
  await withBoot(e, 6, (vm) => failedTrial(checks, e, vm, good));
  const cut = await withBoot(e, 7, (vm) => backThenCut(checks, e, vm));
  await withBoot(e, 8, (vm) => afterCut(checks, e, vm, cut));
}

/** boot 4: e2e-1 on slot A, its timer, then the update to e2e-2 (true when it installed) */
async function onSlotA(checks: Checks, e: OsE2e, vm: Vm): Promise<boolean> {
  let installed = false;
  await stage('boot 4 (os): up on slot A', () =>
    checks.run(OS_CHECKS.layout, async () => {
      await up(vm, e);
      expect(slotOf(vm) === 'A', `GRUB booted ${slotOf(vm) ?? 'no slot'} (kernel command line)`);
      const state = await ssh(e, STATE);
      expect(new RegExp(`A_VERSION='${RELEASES.v1}'`).test(state), `the shared state says ${state}`);
      const rauc = await ssh(e, 'sudo -n rauc status 2>&1');
      expect(/Booted from: rootfs\.0\b/.test(rauc) && /rootfs\.1/.test(rauc), `rauc status: ${rauc.slice(0, 400)}`);
      return `slot A (${RELEASES.v1}); rauc: ${rauc
        .split('\n')
        .find((l) => /Booted from/.test(l))
        ?.trim()}`;
    }),
  );
  await checks.run(OS_CHECKS.timer, async () => {
    const t = await ssh(
      e,
      'systemctl is-enabled edgeforge-os-update.timer; systemctl show -p TimersCalendar --value edgeforge-os-update.timer; systemctl list-timers --all --no-pager edgeforge-os-update.timer',
    );
    expect(/^enabled/m.test(t) && /OnCalendar=\*-\*-\* 00:00:00 Etc\/UTC/.test(t), `timer: ${t}`);
    return t.split('\n').filter(Boolean).slice(1).join(' | ').replace(/\s+/g, ' ').slice(0, 300);
  });
  await stage('boot 4 (os): update to v2 in the window', () =>
    checks.run(OS_CHECKS.install, async () => {
      if (!vm.running) notReached('the guest is not running');
      await publish(e, RELEASES.v2);
      const took = await runUpdate(vm, e, RELEASES.v2, 'B');
      const env = readGrubEnv(e.image);
      expect(env.ORDER === 'B A' && env.B_OK === '1' && env.B_TRY === '0', `GRUB's environment after the install: ${JSON.stringify(env)}`);
      const got = e.source.requests.filter((r) => /\.raucb/.test(r));
      expect(got.length > 0, `the device did not download the bundle (requests: ${e.source.requests.join(', ')})`);
      installed = true;
      return `${took}; downloaded ${got.join(', ')}; GRUB: ${JSON.stringify(env)}`;
    }),
  );
  return installed;
}

/** boot 5: the trial of e2e-2 in slot B passes (true), its report; then the update to the unhealthy e2e-3 */
async function trialOfV2(checks: Checks, e: OsE2e, vm: Vm): Promise<boolean> {
  let good = false;
  await stage('boot 5 (os): trial of v2 in slot B', () =>
    checks.run(OS_CHECKS.good, async () => {
      await vm.waitFor(/slot B passed its health check/, e.timeoutMs, 'the health check passing');
      expect(slotOf(vm) === 'B', `GRUB booted ${slotOf(vm) ?? 'no slot'}`);
      await up(vm, e);
      const live = await ssh(e, `cat ${MARKER}; hostname; findmnt -n -o SOURCE /var/lib/rancher; systemctl is-active k3s.service; ${STATE} | grep -E "^(B_VERSION|TRIAL)="`);
      expect(live.startsWith(`${RELEASES.v2}\n${e.device}\n`), `slot B: ${live}`);
      expect(/edgeforge-data\S*\[\/rancher\]/.test(live) && /\nactive\n/.test(live + '\n'), `data volume and K3s: ${live}`);
      const env = readGrubEnv(e.image);
      expect(env.B_OK === '1' && env.B_TRY === '0', `B not marked good: ${JSON.stringify(env)}`);
      good = true;
      return live.split('\n').join('; ');
    }),
  );
  await checks.run(OS_CHECKS.statusGood, async () => {
    if (!e.status) notReached('no status broker in this run');
    const said = await statusSays(e, (os) => os.slot === 'B' && os.version === RELEASES.v2, 180);
    expect(said.ok, `no status with slot B / ${RELEASES.v2} within 3 minutes (last: ${JSON.stringify(said.last ?? null)})`);
    return `os: slot B, ${RELEASES.v2}`;
  });
  if (good) {
    await stage('boot 5 (os): update to the unhealthy v3', async () => {
      await publish(e, RELEASES.bad);
      log(await runUpdate(vm, e, RELEASES.bad, 'A'));
    }).catch((err) => log(`update to ${RELEASES.bad}: ${(err as Error).message}`));
  }
  return good;
}

/** boot 6: the unhealthy trial goes back by itself */
async function failedTrial(checks: Checks, e: OsE2e, vm: Vm, good: boolean): Promise<void> {
  await stage('boot 6 (os): trial of v3 fails', () =>
    checks.run(OS_CHECKS.bad, async () => {
      if (!good) notReached('v2 was not installed and marked good first');
      const m = await vm.waitFor(/ROLLBACK: (\S+) did not pass its trial[^\n]*/, e.timeoutMs, 'the health check rolling back');
      expect(slotOf(vm) === 'A' && m[1] === RELEASES.bad, `slot ${slotOf(vm)}, ${m[0]}`);
      await vm.waitExit(300_000);
      const env = readGrubEnv(e.image);
      expect(env.A_OK === '0', `slot A not marked bad: ${JSON.stringify(env)}`);
      return `${m[0].trim()}; GRUB: ${JSON.stringify(env)}`;
    }),
  );
}

/** boot 7: back on e2e-2 with the rollback reported; then the power is cut during the next install (true when it was) */
async function backThenCut(checks: Checks, e: OsE2e, vm: Vm): Promise<boolean> {
  let cut = false;
  await stage('boot 7 (os): back on v2, rollback reported', () =>
    checks.run(OS_CHECKS.back, async () => {
      if (checks.results.find((x) => x.name === OS_CHECKS.bad)?.outcome !== 'pass') notReached('the unhealthy trial did not roll back');
      await up(vm, e);
      expect(slotOf(vm) === 'B', `GRUB booted ${slotOf(vm)}`);
      const live = await ssh(e, `cat ${MARKER}; ${STATE} | grep -E "^ROLLBACK"`);
      expect(live.startsWith(RELEASES.v2) && new RegExp(`ROLLBACK_VERSION='${RELEASES.bad}'`).test(live), `slot B: ${live}`);
      if (!e.status) return live.split('\n').join('; ');
      const said = await statusSays(e, (os) => os.rollback.version === RELEASES.bad && os.slot === 'B', 180);
      expect(said.ok, `the status report does not carry the rollback (last: ${JSON.stringify(said.last ?? null)})`);
      const st = await e.statusCli();
      const att = (JSON.parse(st.stdout).attention as { id: string; reason: string }[]).find((a) => a.id === e.device);
      expect(att && att.reason.includes(`OS ${RELEASES.bad} rolled back 1 time(s)`), `edgeforge status: ${JSON.stringify(att ?? null)}`);
      return `${live.split('\n').join('; ')}; edgeforge status: ${att!.reason.slice(0, 200)}`;
    }),
  );
  await stage('boot 7 (os): power cut during the install', async () => {
    if (!vm.running) return;
    const from = vm.console.length;
    await sshRun(e.target, 'sudo -n systemctl start --no-block edgeforge-os-update.service', 30);
    await vm.waitFor(new RegExp(`installing ${RELEASES.bad} into slot A`), 10 * 60_000, 'the updater installing again', from);
    // RAUC is writing slot A: the power goes
    await new Promise((r) => setTimeout(r, 12_000));
    expect(vm.running, 'the guest stopped before the power cut');
    await vm.kill();
    cut = true;
  }).catch((err) => log(`power cut: ${(err as Error).message}`));
  return cut;
}

/** boot 8: the cut install changed nothing that boots, and the state written before it is whole */
async function afterCut(checks: Checks, e: OsE2e, vm: Vm, cut: boolean): Promise<void> {
  await stage('boot 8 (os): after the power cut', () =>
    checks.run(OS_CHECKS.cut, async () => {
      if (!cut) notReached('the power was not cut during an install');
      const env = readGrubEnv(e.image);
      await up(vm, e);
      expect(slotOf(vm) === 'B', `GRUB booted ${slotOf(vm)} (environment before the boot: ${JSON.stringify(env)})`);
      // first boot's checks run again after the cut (and reload systemd): read until systemctl answers
      const read = () => ssh(e, `cat ${MARKER}; systemctl is-active k3s.service; ${STATE} | grep -E "^(B_VERSION|NOTE|TRIAL)="`, 90);
      let live = await read();
      for (let i = 0; i < 12 && !live.startsWith(`${RELEASES.v2}\nactive`); i++) {
        await new Promise((r) => setTimeout(r, 10_000));
        live = await read();
      }
      expect(live.startsWith(`${RELEASES.v2}\nactive`) && /interrupted|stopped before it was activated/.test(live), `after the cut: ${live}`);
      // the state written before the cut is whole: slot B's release is still known
      expect(live.includes(`B_VERSION='${RELEASES.v2}'`), `the state lost slot B's release: ${live}`);
      await powerOff(vm, e.target, log).catch((err) => log(`power-off after boot 8: ${(err as Error).message}`));
      return `${live.split('\n').join('; ')}; GRUB: ${JSON.stringify(env)}`;
    }),
  );
}
