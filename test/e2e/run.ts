// `npm run test:e2e`: proof that a device boots from what edgeforge builds. Not part of `npm test` (it needs
// root for the base image, qemu-system-aarch64, and 5-20 minutes).
//
//   1. base     the cached Debian arm64 uefi-gpt base image (scripts/e2e/base-image.ts)
//   2. smoke    the base alone boots with the test's own NoCloud seed (a failure here is the base's, not ours)
//   3. build    the example fleet (a test copy: qemu network, tang on the host, K3s/Flux stand-ins in an
//               airgap bundle) built against the base; one device's image materialized
//   4. boot 1   with tang reachable: cloud-init runs the device's seed, the first-boot program runs; the test
//               logs in over SSH trusting only the pinned host key, then powers the guest off cleanly
//   5. disk     the powered-off image read from the host (debugfs, mtools, cryptsetup luksDump)
//   6. boot 2   without tang (the stolen device): the data volume must stay locked
//
// Every check is reported by name as PASS, FAIL (reached and wrong) or NOT REACHED (an earlier stage or a
// missing piece stopped it). Exit 0 only when every check passed. Stage timings are printed at the end.
//
// Environment: EDGEFORGE_E2E_WORK (work dir, default a fresh temp dir: kept when a check failed or with
// EDGEFORGE_E2E_KEEP=1, removed after a passing run), EDGEFORGE_E2E_CACHE (base
// cache), EDGEFORGE_E2E_SKIP_SMOKE=1, EDGEFORGE_E2E_BOOT_TIMEOUT (seconds to cloud-init's end, default 1200).
//
// The stages, in order, are functions of their own: build-stages.ts (fixtures, build, GitOps tree, image),
// boot1.ts (boot 0's settings, boot 1 and its live checks), disk-checks.ts (the image read after boot 1),
// later-boots.ts (boots 2 and 3); context.ts holds the check names and the state they hand on.
import { promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBaseImage, type BaseImageInfo } from '../../scripts/e2e/base-image.ts';
import { Checks } from '../../scripts/e2e/checks.ts';
import { DEVICE, EXAMPLE, GIT_GUEST, STATUS_GUEST_IP, TANG_GUEST } from '../../scripts/e2e/fleet.ts';
import { AIRGAP_CHECKS } from '../../scripts/e2e/airgap.ts';
import { smokeBase, SMOKE_CHECKS } from '../../scripts/e2e/smoke.ts';
import { freePort } from '../../scripts/e2e/ssh.ts';
import { log, stage, stageSummary } from '../../scripts/e2e/stage.ts';
import { ADMIN_PASSWORD_FILE, STATUS_CHECKS, closeStatus } from '../../scripts/e2e/status.ts';
import { FIRSTBOOT_CHECKS, bootLateThenCut, permanentFailureBoot, resumedChecks } from '../../scripts/e2e/firstboot.ts';
import { DAY2_CHECKS } from '../../scripts/e2e/day2.ts';
import { OCI_CHECKS, closeOci } from '../../scripts/e2e/oci.ts';
import { OS_CHECKS, OS_GUEST, makeOsReleases, osUpdateScenario, type OsReleases } from '../../scripts/e2e/os-update.ts';
import { BOOT_TIMEOUT, C, CARD_EXTRA, edgeforge, type Built, type Run } from './context.ts';
import { buildStages } from './build-stages.ts';
import { bootOne, deviceAccess, type Device } from './boot1.ts';
import { diskStage } from './disk-checks.ts';
import { laterBoot } from './later-boots.ts';

async function main(): Promise<number> {
  const checks = new Checks();
  const skipSmoke = process.env.EDGEFORGE_E2E_SKIP_SMOKE === '1';
  declareChecks(checks, skipSmoke);
  const work = process.env.EDGEFORGE_E2E_WORK ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-e2e-')));
  await fs.mkdir(work, { recursive: true });
  log(`work dir ${work} (serial logs, build output, images; kept for inspection when a check fails)`);

  // 1. base
  let base: BaseImageInfo;
  try {
    base = await stage('base image', () => ensureBaseImage());
    checks.pass('base: image built', `${base.path} (${(base.size / 2 ** 20).toFixed(0)} MiB, kernel ${base.kernelVersion})`);
  } catch (err) {
    checks.fail('base: image built', (err as Error).message);
    checks.skipRest('', 'the base image could not be built');
    return finish(checks, work);
  }

  // OS updates: three releases' bundles, made beside the smoke boot and the first boots (scripts/e2e/os-update.ts)
  const edgeLog0 = path.join(work, 'edgeforge-os-releases.log');
  const osReleases: Promise<OsReleases | undefined> = makeOsReleases({ work, base: base.path, inventory: EXAMPLE, edgeforge: (a) => edgeforge(a, edgeLog0) }).catch((err) => {
    log(`OS releases: ${(err as Error).message}`);
    return undefined;
  });
  const run: Run = {
    checks,
    work,
    base,
    osReleases,
    tangDir: path.join(work, 'tang'),
    edgeLog: path.join(work, 'edgeforge.log'),
    fleetDir: path.join(work, 'fleet'),
    sshKey: path.join(work, 'id_ed25519'),
    deployKeyPub: '',
    fluxSecretsOnDevice: '',
    fluxPins: [],
  };

  // 2. smoke
  if (!skipSmoke) {
    await stage('smoke boot (plain NoCloud seed)', () => smokeBase(checks, base, work, { bootMs: 240_000, finishMs: BOOT_TIMEOUT }));
  }

  // 3. build + materialize
  await buildStages(run);
  const built = run.built;
  if (!built) {
    checks.skipRest('', 'no device image (see the build/materialize checks)');
    await run.tang?.close();
    await run.git?.close();
    await closeStatus(run.status);
    await closeOci(run.oci);
    return finish(checks, work);
  }

  // 4. boot 1, tang up; boot 0 (docs/e2e.md) before it: tang and Git unreachable at first, then the power cut
  //    as the k3s step begins
  const dev = await deviceAccess(run, built);
  const cut = await bootLateThenCut(checks, dev.fb, freePort);
  const tangRequestsBoot1Start = run.tang!.requests.length;
  const { cleanOff1, con } = await bootOne(run, built, dev);
  await resumedChecks(checks, cut, dev.live.firstbootLog, work);
  await fs.writeFile(path.join(work, 'boot1-tang-requests.txt'), run.tang!.requests.slice(tangRequestsBoot1Start).join('\n'));

  // 5. the disk
  await diskStage(run, built, dev, { cleanOff1, con, tangRequestsBoot1Start });

  // 6. boot 2 with tang, boot 3 without (later-boots.ts); then the OS updates and the permanent failure
  const off2 = await laterBoot(run, built, dev, 2, true, cleanOff1);
  const off3 = await laterBoot(run, built, dev, 3, false, off2);
  await osUpdates(run, built, dev, off3);
  await permanentFailure(run, built, dev);
  await run.tang?.close();
  await run.git?.close();
  await run.osSource?.close();
  await closeStatus(run.status);
  await closeOci(run.oci);
  return finish(checks, work);
}

/** every check by name, up front: one that no stage reaches is reported NOT REACHED */
function declareChecks(checks: Checks, skipSmoke: boolean): void {
  if (!skipSmoke) checks.declare('base: image built', ...SMOKE_CHECKS);
  else checks.declare('base: image built');
  checks.declare(...Object.values(C));
  checks.declare(...Object.values(STATUS_CHECKS));
  checks.declare(...Object.values(FIRSTBOOT_CHECKS));
  checks.declare(...Object.values(DAY2_CHECKS));
  checks.declare(...Object.values(AIRGAP_CHECKS));
  checks.declare(...Object.values(OCI_CHECKS));
  checks.declare(...Object.values(OS_CHECKS));
}

/** the A/B OS-update scenario after boot 3 (scripts/e2e/os-update.ts), when the releases could be made */
async function osUpdates(run: Run, built: Built, dev: Device, off3: boolean): Promise<void> {
  const { checks, work, fleetDir, edgeLog, osRel, osSource } = run;
  const { mac, sshPort, target } = dev;
  if (osRel && osSource) {
    const inventory = path.join(fleetDir, 'inventory.yaml');
    await osUpdateScenario(
      checks,
      {
        image: built.image,
        work,
        mac,
        sshPort,
        target,
        timeoutMs: BOOT_TIMEOUT,
        source: osSource,
        inventory,
        releases: osRel,
        out: built.out,
        device: DEVICE,
        status: run.status,
        edgeforge: (a) => edgeforge(a, edgeLog),
        forwards: () => [
          { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: run.tang!.port, perConnection: true },
          { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, hostPort: run.git!.port, perConnection: true },
          { guestIp: OS_GUEST.ip, guestPort: OS_GUEST.port, hostPort: osSource.port, perConnection: true },
          ...(run.status ? [{ guestIp: STATUS_GUEST_IP, guestPort: run.status.port, hostPort: run.status.port, perConnection: true }] : []),
        ],
        statusCli: () =>
          edgeforge(
            [
              'status',
              '--json',
              '-i',
              inventory,
              '-o',
              built.out,
              '--password-file',
              path.join(run.status!.dir, ADMIN_PASSWORD_FILE),
              '--site',
              'kr-south/changwon-plant-2',
              '--broker',
              `mqtts://127.0.0.1:${run.status!.port}`,
            ],
            edgeLog,
          ),
      },
      off3,
    );
  } else checks.skipRest('os', 'no OS releases (see the bundles check)');
}

/** the permanent-failure boot on a fresh copy of the device's image (scripts/e2e/firstboot.ts) */
async function permanentFailure(run: Run, built: Built, dev: Device): Promise<void> {
  await permanentFailureBoot(run.checks, dev.fb, async (to) => {
    if ((await edgeforge(['image', 'materialize', '-o', built.out, '--device', DEVICE, '--to', to], run.edgeLog)).code !== 0) return false;
    await fs.truncate(to, (await fs.stat(to)).size + CARD_EXTRA);
    return true;
  });
}

function finish(c: Checks, work: string): number {
  // a passing run's work dir (~4 GB of images) is removed unless asked for; a failing one is kept to inspect
  const remove = c.ok && !process.env.EDGEFORGE_E2E_WORK && process.env.EDGEFORGE_E2E_KEEP !== '1';
  if (remove) rmSync(work, { recursive: true, force: true });
  const where = remove ? `work dir ${work} removed (every check passed; EDGEFORGE_E2E_KEEP=1 keeps it)` : `work dir: ${work}`;
  process.stderr.write(`\n${c.summary()}\n\n${stageSummary()}\n\n${where}\n`);
  return c.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`e2e harness error: ${err instanceof Error ? err.stack : String(err)}\n${stageSummary()}\n`);
    process.exit(2);
  },
);
