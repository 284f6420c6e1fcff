// Failures of one device, with the phase they happened in and whether trying again can help.
// Only transient network trouble is retried: never a host-key refusal, an authentication failure,
// a wrong sudo password, an sshd without SFTP, or the first-boot program's own failure (it reports what to fix).
export type Phase = 'connect' | 'preflight' | 'upload' | 'apply' | 'verify';
export const PHASES: readonly Phase[] = ['connect', 'preflight', 'upload', 'apply', 'verify'];

export class PhaseError extends Error {
  constructor(
    readonly phase: Phase,
    message: string,
    /** a retry (new connection, from connect) may succeed */
    readonly transient: boolean,
  ) {
    super(message);
  }
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EPIPE', 'EAI_AGAIN', 'ENOTCONN']);

/** ssh2's error when the device's sshd has no SFTP subsystem: permanent (a reconnect gets the same sshd) */
export function isNoSftp(err: unknown): boolean {
  return /Unable to start subsystem: sftp|No SFTP/i.test((err as { message?: string })?.message ?? '');
}

export const NO_SFTP =
  "the device's sshd has no SFTP subsystem (no 'Subsystem sftp' line in sshd_config), and edgeforge uploads the bundle over SFTP: add 'Subsystem sftp internal-sftp' (or the distribution's sftp-server) to /etc/ssh/sshd_config, reload sshd, and provision again";

/** Is this error from ssh2/net one a new connection might not hit? */
export function isTransient(err: unknown): boolean {
  if (err instanceof PhaseError) return err.transient;
  if (isNoSftp(err)) return false;
  const e = err as { code?: string; level?: string; message?: string };
  if (e?.code && TRANSIENT_CODES.has(e.code)) return true;
  if (e?.level === 'client-timeout') return true;
  if (e?.level === 'client-authentication') return false;
  const m = e?.message ?? '';
  return /Timed out while waiting for handshake|Connection lost before handshake|No response from server|Keepalive timeout|socket hang up|Not connected|Channel open failure|connection closed/i.test(
    m,
  );
}

/** A short, one-line description of a library error (no stacks in device reports). */
export function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; level?: string };
  if (e?.level === 'client-authentication')
    return 'authentication failed (the device refused every key offered: check ssh.user, ssh.identityFile or the agent in SSH_AUTH_SOCK, and the authorized_keys on the device)';
  if (isNoSftp(err)) return NO_SFTP;
  const msg = (e?.message ?? String(err)).split('\n')[0];
  if (e?.code === 'ECONNREFUSED') return `connection refused (${msg.replace(/^connect ECONNREFUSED /, '')}): is sshd running and the port right?`;
  if (e?.code === 'EHOSTUNREACH' || e?.code === 'ENETUNREACH') return `no route to host (${msg})`;
  if (e?.code === 'ENOTFOUND') return `host name not found (${msg})`;
  return msg;
}
