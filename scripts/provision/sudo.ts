// Running a command as root on the device: sudo without a password (-n: never prompt, fail instead),
// or with the password from the environment variable ssh.sudoPasswordEnv names, fed on stdin (-S) so it
// never appears on a command line, in a log or in a report.
import { PhaseError, type Phase } from './errors.ts';
import type { DeviceRun } from './context.ts';
import type { ExecOptions, ExecResult } from './session.ts';

export function sudoPassword(run: DeviceRun): string | undefined {
  const name = run.device.ssh.sudoPasswordEnv;
  if (!name) return undefined;
  const v = run.env[name];
  if (!v) throw new PhaseError('preflight', `ssh.sudoPasswordEnv names ${name}, but ${name} is not set in edgeforge's environment: export it (e.g. read -rs ${name}; export ${name})`, false);
  return v;
}

/** The command prefix and stdin for root. A root login runs the command directly: sudo would add a process
 * (and a PAM session) per device for nothing. */
export function asRoot(run: DeviceRun): { prefix: string; stdin?: string } {
  const f = run.facts;
  if (f && f.uid === 0) return { prefix: '' };
  if (run.sudoPassword !== undefined) return { prefix: "sudo -S -p '' -- ", stdin: run.sudoPassword + '\n' };
  return { prefix: 'sudo -n -- ' };
}

const SUDO_REFUSED =
  /^sudo: (a password is required|\d+ incorrect password attempts?|no password was provided|a terminal is required)|^Sorry, try again|is not in the sudoers file|is not allowed to execute/m;

/** Run `command` as root (or a command line built around the sudo prefix); turns sudo's own refusals into a clear, non-retried error of `phase`. */
export async function execAsRoot(run: DeviceRun, phase: Phase, command: string | ((sudo: string) => string), o: Omit<ExecOptions, 'stdin'>): Promise<ExecResult> {
  const { prefix, stdin } = asRoot(run);
  const r = await run.session!.exec(typeof command === 'string' ? prefix + command : command(prefix), { ...o, stdin });
  if (r.code !== 0 && prefix) {
    const refused = sudoRefusal(run, phase, r.stderr);
    if (refused) throw refused;
  }
  return r;
}

/** sudo's own refusal in `stderr`, as a clear, non-retried error of `phase` (undefined when it is not one) */
export function sudoRefusal(run: DeviceRun, phase: Phase, stderr: string): PhaseError | undefined {
  if (!SUDO_REFUSED.test(stderr)) return undefined;
  const pw = run.device.ssh.sudoPasswordEnv;
  const why = stderr.match(SUDO_REFUSED)?.[0] ?? 'refused';
  return new PhaseError(
    phase,
    pw
      ? `sudo refused the password from ${pw} (${why.trim()}): check the password of ${run.device.ssh.user ?? 'root'} on the device`
      : `sudo needs a password on this device (${why.trim()}): set ssh.sudoPasswordEnv in the inventory to the name of an environment variable holding it, or allow passwordless sudo for ${run.device.ssh.user ?? 'root'}`,
    false,
  );
}
