// Phase apply: as root, move the checked staging directory into place as the device's bundle
// (<root>/var/lib/edgeforge/bundle, where the first-boot program and an operator re-running it by hand
// expect it), then run the first-boot program, streaming its log into the device's log file.
import { PhaseError } from '../errors.ts';
import { shq } from '../session.ts';
import { execAsRoot } from '../sudo.ts';
import type { DeviceRun } from '../context.ts';

// $1 staging, $2 EDGEFORGE_ROOT, $3 EDGEFORGE_ARCH, $4 EDGEFORGE_SYS, $5 first-boot program (relative).
// sudo resets the environment, so a sandboxed device's EDGEFORGE_* settings are passed through explicitly
// (all empty on a real device).
export const APPLY_SCRIPT = `set -eu
S=$1; R=\${2%/}; D="$R/var/lib/edgeforge"; B="$D/bundle"
[ -n "$2" ] && export EDGEFORGE_ROOT="$2"
[ -n "$3" ] && export EDGEFORGE_ARCH="$3"
[ -n "$4" ] && export EDGEFORGE_SYS="$4"
umask 077
mkdir -p "$D"
rm -rf "$B.new" "$B.old"
mv "$S" "$B.new"
chown -R 0:0 "$B.new"
chmod 0700 "$B.new"
if [ -e "$B" ]; then mv "$B" "$B.old"; fi
mv "$B.new" "$B"
rm -rf "$B.old"
export EDGEFORGE_BUNDLE="$B"
cd "$B"
exec sh "$B/$5"
`;

export function applyCommand(staging: string, firstboot: string): string {
  return `sh -c ${shq(APPLY_SCRIPT)} edgeforge-apply ${shq(staging)} "\${EDGEFORGE_ROOT-}" "\${EDGEFORGE_ARCH-}" "\${EDGEFORGE_SYS-}" ${shq(firstboot)}`;
}

/** "2026-11-28T13:00:00Z edgeforge-firstboot[k3s]: wrote /etc/…" → "[k3s] wrote /etc/…" */
function shortLine(l: string): string {
  return l.replace(/^\S+Z edgeforge-firstboot\[([^\]]*)\]: /, '[$1] ').slice(0, 200);
}

export async function apply(run: DeviceRun): Promise<void> {
  const cmd = applyCommand(run.staging!, run.bundle.firstboot);
  run.log.line(`apply: running ${run.bundle.firstboot} as root (bundle ${run.bundle.hash})`);
  let lastErr = '';
  const r = await execAsRoot(run, 'apply', cmd, {
    timeoutMs: run.timeouts.apply,
    onStdout: (c) => {
      const l = run.log.output('  | ', c);
      if (l) run.progress({ phase: 'apply', message: shortLine(l) });
    },
    onStderr: (c) => {
      const l = run.log.output('  | ', c);
      if (l) {
        lastErr = l;
        run.progress({ phase: 'apply', message: shortLine(l) });
      }
    },
  });
  run.log.flushOutput('  | ');
  if (r.code !== 0) {
    // the program's own last words say what to fix (it is safe to re-run; we do not retry it blindly)
    const failed = r.stderr.split('\n').filter((l) => /FAILED:/.test(l)).pop() ?? lastErr;
    throw new PhaseError('apply', `the first-boot program failed (exit ${r.code ?? r.signal}): ${shortLine(failed.trim()) || 'no output'} — see ${run.log.file}`, false);
  }
  run.log.line('apply: the first-boot program finished');
}
