// Phase preflight: read-only facts about the device — architecture, RAM, free disk, kernel WireGuard,
// sudo, and the bundle hash already applied — checked against what the bundle needs. `--dry-run` stops
// after this phase. One remote shell keeps it to one round trip, and the same shell later applies the
// bundle (one login shell per device instead of two).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NO_SFTP, PhaseError, describe, isNoSftp } from '../errors.ts';
import { describeFirstboot, firstbootStateFromFacts, firstbootStateScript } from '../firstboot-state.ts';
import { execAsRoot, sudoPassword } from '../sudo.ts';
import { withTimeout } from '../session.ts';
import { fillShellTemplate, shq } from '../../util/shell.ts';
import { APPLIED_FILE, STAGING_PREFIX, STATE_DIR } from '../../device/layout.ts';
import { freeKiB } from '../sftp.ts';
import type { DeviceRun, Facts } from '../context.ts';
import { applyControl } from './apply.ts';

/** printed after the facts; the shell then waits on stdin for apply */
export const PREFLIGHT_DONE = '__edgeforge_preflight_done__';

/**
 * The read-only facts, as one shell text: preflight.sh (its leading comment block is not sent) with the device
 * layout's paths filled in, then the first-boot state's lines (firstboot-state.ts).
 */
export const PREFLIGHT_SCRIPT =
  fillShellTemplate('scripts/provision/phase/preflight.sh', readFileSync(new URL('./preflight.sh', import.meta.url), 'utf8').replace(/^(#.*\n)+/, ''), {
    STATE_DIR: shq(STATE_DIR),
    APPLIED_FILE: shq(APPLIED_FILE),
  }) + firstbootStateScript();

export function parseFacts(stdout: string): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const l of stdout.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) kv[l.slice(0, i)] = l.slice(i + 1);
  }
  return kv;
}

/** the bundle hash in an applied.json text, "" when there is none */
export function appliedHash(text: string): string {
  try {
    const j = JSON.parse(text) as { bundleSha256?: unknown };
    return typeof j.bundleSha256 === 'string' ? j.bundleSha256 : '';
  } catch {
    return '';
  }
}

export async function readAppliedAsRoot(run: DeviceRun, phase: 'preflight' | 'verify', timeoutMs: number): Promise<string> {
  const f = `${run.facts!.root}${APPLIED_FILE}`;
  const r = await execAsRoot(run, phase, `sh -c ${shq('[ -f "$1" ] && head -c 8192 "$1" || true')} sh ${shq(f)}`, { timeoutMs });
  if (r.code !== 0) throw new PhaseError(phase, `cannot read ${f} as root: ${r.stderr.trim() || `exit ${r.code}`}`, false);
  return r.stdout;
}

/**
 * Free KiB on the device's root and staging file systems, over the SFTP channel the upload uses anyway
 * (statvfs@openssh.com: no process on the device); `df` only on a server without that extension.
 */
async function measureSpace(run: DeviceRun, facts: Facts, timeoutMs: number): Promise<void> {
  const rootDir = facts.root || '/';
  const stagingDir = `${facts.root}${path.posix.dirname(STAGING_PREFIX)}`;
  const viaSftp = async () => {
    const s = await run.session!.sftp();
    return Promise.all([freeKiB(s, rootDir), freeKiB(s, stagingDir)]);
  };
  let [root, staging] = await withTimeout(viaSftp(), timeoutMs, 'preflight (free space)');
  if (root === undefined || staging === undefined) {
    run.log.line('preflight: the SFTP server does not answer statvfs@openssh.com: asking df');
    const r = await run.session!.exec(`df -Pk ${shq(rootDir)} ${shq(stagingDir)}`, { timeoutMs });
    const avail = r.stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.trim().split(/\s+/)[3]));
    [root, staging] = [avail[0], avail[1] ?? avail[0]];
  }
  facts.rootFreeKiB = Number.isFinite(root) ? root! : 0;
  facts.stagingFreeKiB = Number.isFinite(staging) ? staging! : facts.rootFreeKiB;
  run.log.line(`preflight: free: ${Math.floor(facts.rootFreeKiB / 1024)} MiB on ${rootDir}, ${Math.floor(facts.stagingFreeKiB / 1024)} MiB on ${stagingDir}`);
}

export async function preflight(run: DeviceRun): Promise<Facts> {
  run.sudoPassword = sudoPassword(run);
  const t = run.timeouts.preflight;
  const { facts, kv } = await readFacts(run, t);
  if (facts.firstboot) run.log.line(`preflight: on the device: ${describeFirstboot(facts.firstboot)}`);
  run.facts = facts;
  const problems = deviceProblems(run, facts, kv);
  // Every problem is reported at once, before anything can fail on its own: free space over SFTP (an sshd
  // without SFTP is one of the problems, permanent) and sudo come after the facts, not before them.
  await checkSpace(run, facts, t, problems);
  const d = run.device;
  if (facts.memKiB && facts.memKiB < d.profile.ramMiB * 1024 * 0.85) {
    facts.warnings.push(`RAM is ${Math.round(facts.memKiB / 1024)} MiB but profile ${d.profileName} says ${d.profile.ramMiB} MiB: K3s reservations are tuned for the profile`);
  }
  await checkSudo(run, facts, t, problems);
  if (problems.length) throw new PhaseError('preflight', problems.join('; '), false);
  if (facts.appliedNeedsSudo) facts.appliedHash = appliedHash(await readAppliedAsRoot(run, 'preflight', t));
  for (const w of facts.warnings) run.log.line(`preflight: warning: ${w}`);
  run.log.line(`preflight: applied bundle on the device: ${facts.appliedHash || 'none'}; this build: ${run.bundle.hash}`);
  return facts;
}

/** Starts the one shell for preflight and apply: it prints the facts, then waits for the go-ahead (see applyControl). */
async function readFacts(run: DeviceRun, timeoutMs: number): Promise<{ facts: Facts; kv: Record<string, string> }> {
  run.remote = await run.session!.start(`${PREFLIGHT_SCRIPT}echo ${PREFLIGHT_DONE}\n${applyControl(run.bundle.firstboot, Boolean(run.opts.force))}`);
  const got = await run.remote.until(PREFLIGHT_DONE, timeoutMs);
  if ('ended' in got) {
    const r = got.ended;
    throw new PhaseError('preflight', `the read-only checks failed (exit ${r.code}): ${r.stderr.trim().split('\n').pop() ?? ''}`, false);
  }
  const stdout = got.before;
  run.log.line(
    `preflight: ${stdout
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('applied=') && !l.startsWith('fb.'))
      .join(' ')}`,
  );
  const kv = parseFacts(stdout);
  const facts: Facts = {
    root: kv.root ?? '',
    arch: kv.arch ?? 'unknown',
    kernel: kv.kernel ?? 'unknown',
    memKiB: Number(kv.memKiB ?? 0),
    rootFreeKiB: 0,
    stagingFreeKiB: 0,
    stateDir: kv.stateDir === 'yes',
    wireguard: kv.wireguard === 'yes',
    uid: Number(kv.uid ?? -1),
    sudo: kv.sudo === 'yes',
    sha256sum: kv.sha256sum === 'yes',
    appliedHash: kv.applied && kv.applied !== 'none' && kv.applied !== 'unreadable' ? appliedHash(kv.applied) : '',
    appliedNeedsSudo: kv.applied === 'unreadable',
    firstboot: firstbootStateFromFacts(stdout),
    warnings: [],
  };
  return { facts, kv };
}

/** What the device lacks for the bundle: the profile's architecture, WireGuard, sha256sum, mosquitto_pub, root or sudo. */
function deviceProblems(run: DeviceRun, facts: Facts, kv: Record<string, string>): string[] {
  const d = run.device;
  const problems: string[] = [];
  const want = d.profile.arch === 'arm64' ? ['aarch64', 'arm64'] : [d.profile.arch];
  if (!want.includes(facts.arch)) problems.push(`the device is ${facts.arch} but profile ${d.profileName} is ${d.profile.arch}: wrong device at ${d.ssh.host}, or wrong profile in the inventory`);
  if (!facts.wireguard) {
    problems.push(
      `the kernel ${facts.kernel} has no WireGuard module (K3s's flannel backend wireguard-native needs it): on Ubuntu for Raspberry Pi install linux-modules-extra-raspi and reboot; on Debian/Raspberry Pi OS use a kernel built with CONFIG_WIREGUARD`,
    );
  }
  if (!facts.sha256sum) problems.push('sha256sum is not installed on the device (coreutils): the upload cannot be checked there');
  // fleet status (docs/status.md): the bundle carries the reporter, which publishes with mosquitto_pub
  if (kv.mosquitto_pub === 'no' && run.bundle.files.some((f) => f.rel === 'status/edgeforge-status-report')) {
    problems.push('mosquitto_pub is not installed on the device (Debian package mosquitto-clients): the fleet status reporter needs it; the base-image profiles list it as required');
  }
  if (facts.uid !== 0 && !facts.sudo) problems.push(`${d.ssh.user ?? 'root'} is not root and sudo is not installed: install sudo or connect as root`);
  return problems;
}

/**
 * Room for the bundle in staging (twice its size plus 64 MiB). Free space matters only to a device that will get
 * the bundle (a rerun skips the others without asking).
 */
async function checkSpace(run: DeviceRun, facts: Facts, timeoutMs: number, problems: string[]): Promise<void> {
  if (facts.appliedHash !== run.bundle.hash || run.opts.force) {
    try {
      await measureSpace(run, facts, timeoutMs);
    } catch (err) {
      if (isNoSftp(err)) problems.push(NO_SFTP);
      else if (problems.length) problems.push(`free space not measured (${describe(err)})`);
      else throw err;
    }
  }
  const needKiB = Math.ceil((run.bundle.bytes * 2) / 1024) + 64 * 1024;
  if (facts.stagingFreeKiB && facts.stagingFreeKiB < needKiB) {
    problems.push(
      `only ${Math.floor(facts.stagingFreeKiB / 1024)} MiB free in ${facts.root}${path.posix.dirname(STAGING_PREFIX)}; the bundle needs about ${Math.ceil(needKiB / 1024)} MiB (staging + installed copy)`,
    );
  }
}

/** sudo is checked here, before anything is written (a wrong password fails now, not after the upload). */
async function checkSudo(run: DeviceRun, facts: Facts, timeoutMs: number, problems: string[]): Promise<void> {
  if (!((facts.uid !== 0 && facts.sudo) || run.sudoPassword !== undefined)) return;
  try {
    const s = await execAsRoot(run, 'preflight', 'true', { timeoutMs });
    if (s.code !== 0) problems.push(`sudo does not work for ${run.device.ssh.user ?? 'root'}: ${s.stderr.trim() || `exit ${s.code}`}`);
  } catch (err) {
    if (err instanceof PhaseError && !err.transient) problems.push(err.message);
    else throw err;
  }
}
