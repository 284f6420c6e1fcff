// The device's first-boot status file (STATUS_PATHS.firstbootState, written by the first-boot program: step,
// state, attempt, retry, next, error, steps, bundle), read over SSH so `provision` reports where each device
// stands — a seed-delivered device still retrying, a permanent failure — instead of guessing from exit codes.
// The format only: reading it as root belongs to the apply phase (phase/apply.ts).
import { shq } from '../util/shell.ts';
import { STATUS_PATHS } from '../device/layout.ts';

export interface FirstbootState {
  step: string;
  state: string;
  attempt: number;
  /** temporary (the device's service retries by itself) or permanent (not retried) */
  retry: string;
  next: string;
  error: string;
  /** steps the device's journal has done for `bundle` */
  steps: string[];
  bundle: string;
}

/** key=value lines of the status file -> the state; undefined when there is no state */
export function parseFirstbootState(text: string): FirstbootState | undefined {
  const kv: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0 && !(l.slice(0, i) in kv)) kv[l.slice(0, i)] = l.slice(i + 1);
  }
  if (!kv.state) return undefined;
  return {
    step: kv.step ?? '',
    state: kv.state,
    attempt: Number(kv.attempt ?? 0) || 0,
    retry: kv.retry ?? '',
    next: kv.next ?? '',
    error: kv.error ?? '',
    steps: (kv.steps ?? '').split(' ').filter(Boolean),
    bundle: kv.bundle ?? '',
  };
}

/** one line for a person: "step k3s failed (attempt 3, temporary; next attempt 2026-…): cannot download …" */
export function describeFirstboot(s: FirstbootState): string {
  if (s.state === 'done') return `first boot finished (steps: ${s.steps.join(' ')})`;
  if (s.state === 'running') return `first boot running step ${s.step} (attempt ${s.attempt}; done: ${s.steps.join(' ') || 'none'})`;
  const kind = s.retry === 'permanent' ? 'permanent: not retried' : `temporary${s.next ? `; the device retries at ${s.next}` : ''}`;
  return `first boot stopped at step ${s.step} (attempt ${s.attempt}, ${kind}; done: ${s.steps.join(' ') || 'none'}): ${s.error || '(no message)'}`;
}

/** shell lines for the preflight script: the status file's lines prefixed "fb." (when the login can read it) */
export function firstbootStateScript(): string {
  return `if [ -r "$R"${shq(STATUS_PATHS.firstbootState)} ]; then while IFS= read -r l; do echo "fb.$l"; done <"$R"${shq(STATUS_PATHS.firstbootState)}; fi\n`;
}

/** the "fb." lines of the preflight output, as the status file's text */
export function firstbootStateFromFacts(stdout: string): FirstbootState | undefined {
  return parseFirstbootState(
    stdout
      .split('\n')
      .filter((l) => l.startsWith('fb.'))
      .map((l) => l.slice(3))
      .join('\n'),
  );
}
