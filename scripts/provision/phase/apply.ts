// Phase apply: the shell preflight started is told to go on (one line on its stdin: how to become root and
// where the upload is); it then
//   1. checks the staged bundle against SHA256SUMS on the device (the end of the upload phase: a mismatch
//      is reported as an upload failure), then prints a marker;
//   2. as root, moves the staging directory into place as the device's bundle (<root>BUNDLE_DIR of device/layout.ts,
//      where the first-boot program and an operator re-running it by hand expect it);
//   3. runs the first-boot program, its output streaming into the device's log file.
import { PhaseError, type Phase } from '../errors.ts';
import { shq } from '../../util/shell.ts';
import { BUNDLE_DIR, FIRSTBOOT, STAGING_PREFIX, STATE_DIR, STATUS_PATHS } from '../../device/layout.ts';
import { asRoot, execAsRoot, sudoRefusal } from '../sudo.ts';
import { SUMS_NAME } from '../../manifest/sums.ts';
import type { DeviceRun } from '../context.ts';
import { describeFirstboot, parseFirstbootState, type FirstbootState } from '../firstboot-state.ts';

// $1 staging, $2 EDGEFORGE_ROOT, $3 EDGEFORGE_ARCH, $4 EDGEFORGE_SYS, $5 first-boot program (relative),
// $6 "1" for --force (the program forgets its step journal and runs every step again).
// sudo resets the environment, so a sandboxed device's EDGEFORGE_* settings are passed through explicitly
// (all empty on a real device). Staging directories left by killed runs are removed here.
export const APPLY_SCRIPT = `set -eu
S=$1; R=\${2%/}; D="$R"${shq(STATE_DIR)}; B="$R"${shq(BUNDLE_DIR)}
[ -z "$2" ] || export EDGEFORGE_ROOT="$2"
[ -z "$3" ] || export EDGEFORGE_ARCH="$3"
[ -z "$4" ] || export EDGEFORGE_SYS="$4"
[ -z "\${6:-}" ] || export EDGEFORGE_FRESH="$6"
umask 077
[ -d "$D" ] || mkdir -p "$D"
for o in "$B.new" "$B.old"; do if [ -e "$o" ]; then rm -rf "$o"; fi; done
# uploaded by a non-root login (then sudo): the files are that user's until root takes them over. A root
# login's staging directory is already root's and 0700 (SFTP mkdir), so no process is spent on it.
if [ ! -O "$S" ]; then chown -R 0:0 "$S"; chmod 0700 "$S"; fi
# not while an attempt of the first-boot service (a seed-delivered device still retrying) reads the bundle
if command -v flock >/dev/null 2>&1; then exec 9>"$D/.lock"; flock -w 900 9 || { echo "edgeforge: the first-boot program holds $D/.lock for 15 minutes" >&2; exit 75; }; fi
if [ -e "$B" ]; then mv "$B" "$B.old"; mv "$S" "$B"; rm -rf "$B.old"; else mv "$S" "$B"; fi
exec 9>&-
for o in "$R"${shq(STAGING_PREFIX)}*; do if [ -d "$o" ]; then rm -rf "$o"; fi; done
export EDGEFORGE_BUNDLE="$B"
cd "$B"
exec sh "$B/$5"
`;

export const UPLOAD_VERIFIED = 'edgeforge: bundle verified on the device';
const BAD_UPLOAD = 86;

/**
 * Run APPLY_SCRIPT (in the shell variable ef_apply) on the staging directory in $ef_s. Through sudo it is a new
 * `sh -c`; a root login runs it in the shell it already has (`eval`: one process fewer per device — the
 * script ends by exec'ing the first-boot program, so nothing runs after it in that shell).
 */
function runApply(sudo: string, firstboot: string, force = false): string {
  const args = `"$ef_s" "\${EDGEFORGE_ROOT-}" "\${EDGEFORGE_ARCH-}" "\${EDGEFORGE_SYS-}" ${shq(firstboot)}${force ? ' 1' : ''}`;
  return sudo ? `exec ${sudo}sh -c "$ef_apply" edgeforge-apply ${args}` : `set -- ${args}; eval "$ef_apply"`;
}

/** The same as one command line (the OpenSSH side of bench:ssh sends it with `ssh host CMD`). */
export function applyCommand(staging: string, firstboot: string, sudo: string): string {
  return (
    `ef_s=${shq(staging)}; ef_apply=${shq(APPLY_SCRIPT)}; ` +
    `cd "$ef_s" && { sha256sum --quiet --strict -c ${SUMS_NAME} >&2 || exit ${BAD_UPLOAD}; } && echo ${shq(UPLOAD_VERIFIED)} && ` +
    runApply(sudo, firstboot)
  );
}

/**
 * What the device shell does after preflight: wait for one line "apply MODE STAGING" (anything else, or EOF:
 * stop), then the same as applyCommand. MODE is how to become root: root (already), sudo (-n), sudo-password
 * (-S: the password is the next line of stdin, which `read` has not consumed).
 */
export function applyControl(firstboot: string, force = false): string {
  const run = (sudo: string) => runApply(sudo, firstboot, force);
  return [
    `IFS=' ' read -r ef_go ef_mode ef_s || exit 0`,
    `[ "$ef_go" = apply ] || exit 0`,
    `ef_apply=${shq(APPLY_SCRIPT)}`,
    `cd "$ef_s" || exit ${BAD_UPLOAD}`,
    `sha256sum --quiet --strict -c ${SUMS_NAME} >&2 || exit ${BAD_UPLOAD}`,
    `echo ${shq(UPLOAD_VERIFIED)}`,
    `case $ef_mode in`,
    `  root) ${run('')} ;;`,
    `  sudo) ${run('sudo -n -- ')} ;;`,
    `  sudo-password) ${run("sudo -S -p '' -- ")} ;;`,
    `esac`,
    `exit 2`,
    '',
  ].join('\n');
}

/** "2026-11-28T13:00:00Z edgeforge-firstboot[k3s]: wrote /etc/…" → "[k3s] wrote /etc/…" */
function shortLine(l: string): string {
  return l.replace(/^\S+Z edgeforge-firstboot\[([^\]]*)\]: /, '[$1] ').slice(0, 200);
}

/** `enterApply` is called once the device has confirmed the upload (the phase moves from upload to apply). */
export async function apply(run: DeviceRun, enterApply: () => void): Promise<void> {
  let verified = false;
  let lastErr = '';
  run.log.line(`apply: checking the upload, then running ${run.bundle.firstboot} as root (bundle ${run.bundle.hash})`);
  const remote = run.remote;
  if (!remote) throw new PhaseError('apply', 'internal: no device shell from preflight', true);
  remote.onStdout = (c) => {
    if (!verified && c.toString('utf8').includes(UPLOAD_VERIFIED)) {
      verified = true;
      run.log.line(`upload: sha256 of every file checked on the device`);
      enterApply();
    }
    const l = run.log.output('  | ', c);
    if (l && verified && !l.includes(UPLOAD_VERIFIED)) run.progress({ phase: 'apply', message: shortLine(l) });
  };
  remote.onStderr = (c) => {
    const l = run.log.output('  | ', c);
    if (l) {
      lastErr = l;
      if (verified) run.progress({ phase: 'apply', message: shortLine(l) });
    }
  };
  const { prefix, stdin } = asRoot(run);
  const mode = prefix === '' ? 'root' : stdin !== undefined ? 'sudo-password' : 'sudo';
  remote.answer(`apply ${mode} ${run.staging}\n${stdin ?? ''}`);
  const r = await remote.wait(run.timeouts.apply);
  if (r.code !== 0 && mode !== 'root') {
    const refused = sudoRefusal(run, 'apply', r.stderr);
    if (refused) throw refused;
  }
  run.log.flushOutput('  | ');
  if (!verified) {
    const why = r.stderr.trim().split('\n').slice(0, 3).join('; ') || `exit ${r.code}`;
    if (r.code === BAD_UPLOAD) throw new PhaseError('upload', `the bundle arrived damaged (sha256sum on the device: ${why}): check the device's storage and provision again`, false);
    throw new PhaseError('upload', `cannot check the staged bundle on the device: ${why}`, false);
  }
  if (r.code !== 0) {
    // the program's own last words say what to fix (it is safe to re-run; we do not retry it blindly), and
    // its status file where it stands: the step, the attempt, whether the device's service retries it
    const failed =
      r.stderr
        .split('\n')
        .filter((l) => /FAILED/.test(l))
        .pop() ?? lastErr;
    const st = await readFirstbootState(run, 'apply', run.timeouts.verify);
    if (st) run.log.line(`apply: ${describeFirstboot(st)}`);
    const kind = r.code === FIRSTBOOT.exitPermanent ? 'permanent failure: not retried' : 'temporary failure';
    const where = st && st.state === 'failed' ? ` at step ${st.step} (attempt ${st.attempt}, ${kind}; done: ${st.steps.join(' ') || 'none'})` : ` (${kind})`;
    throw new PhaseError('apply', `the first-boot program failed${where} (exit ${r.code ?? r.signal}): ${shortLine(failed.trim()) || 'no output'} — see ${run.log.file}`, false);
  }
  run.log.line('apply: the first-boot program finished');
}

/** read the status file as root (after the first-boot program ran); undefined when there is none or it cannot be read */
async function readFirstbootState(run: DeviceRun, phase: Phase, timeoutMs: number): Promise<FirstbootState | undefined> {
  try {
    const f = `${run.facts?.root ?? ''}${STATUS_PATHS.firstbootState}`;
    const r = await execAsRoot(run, phase, `sh -c ${shq('[ -f "$1" ] && head -c 4096 "$1" || true')} sh ${shq(f)}`, { timeoutMs });
    return r.code === 0 ? parseFirstbootState(r.stdout) : undefined;
  } catch {
    return undefined;
  }
}
