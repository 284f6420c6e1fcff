// SFTP requests as promises. Requests issued together go out back to back and OpenSSH's sftp-server (the one
// on Debian, Ubuntu and Raspberry Pi OS devices; internal-sftp too) answers them one at a time, in order: a
// burst of mkdir + open + write + close costs one round trip instead of one each. On a device every round
// trip is a wake-up of sshd and of its SFTP child; on a fleet of a thousand that is most of what they spend.
import type { SFTPWrapper } from 'ssh2';

type Cb<T> = (err: Error | null | undefined, v?: T) => void;

export function sftpCall<T = void>(fn: (cb: Cb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      fn((err, v) => (err ? reject(err) : resolve(v as T)));
    } catch (err) {
      reject(err); // ssh2 throws synchronously for an extension the server does not offer
    }
  });
}

/** Wait for every request of a burst; the first failure (in issue order) is thrown, after all have settled. */
export async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const rs = await Promise.allSettled(ps);
  const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
  return rs.map((r) => (r as PromiseFulfilledResult<T>).value);
}

export const mkdir = (s: SFTPWrapper, dir: string, mode: number) => sftpCall((cb) => s.mkdir(dir, { mode }, (err) => cb(err)));

/** a new file only: O_CREAT|O_EXCL never follows a link or reuses what someone else put there */
export const openNew = (s: SFTPWrapper, file: string, mode: number) => sftpCall<Buffer>((cb) => s.open(file, 'wx', { mode }, cb));

/** fchmod (the server's umask applied to open's mode), the bytes (ssh2 splits them into packets), close */
export function fill(s: SFTPWrapper, handle: Buffer, bytes: Buffer, mode: number): Promise<unknown[]> {
  return settleAll([
    sftpCall((cb) => s.fchmod(handle, mode, (err) => cb(err))),
    sftpCall((cb) => s.write(handle, bytes, 0, bytes.length, 0, (err) => cb(err))),
    sftpCall((cb) => s.close(handle, (err) => cb(err))),
  ]);
}

/**
 * KiB available to the login user on the file system of `dir` (df's "Available"); undefined when the server
 * does not offer statvfs@openssh.com or refuses it (sftp-server -P statvfs): the caller asks df instead.
 */
export async function freeKiB(s: SFTPWrapper, dir: string): Promise<number | undefined> {
  try {
    const st = await sftpCall<{ f_frsize: number | bigint; f_bavail: number | bigint }>((cb) => s.ext_openssh_statvfs(dir, cb));
    return Math.floor((Number(st.f_bavail) * Number(st.f_frsize)) / 1024);
  } catch {
    return undefined;
  }
}

/** The first `max` bytes of a small file: open, then read + close in one burst (ssh2's readFile takes four round trips). */
export async function readSmall(s: SFTPWrapper, file: string, max = 64 * 1024): Promise<Buffer> {
  const handle = await sftpCall<Buffer>((cb) => s.open(file, 'r', cb));
  const buf = Buffer.alloc(max);
  // (an empty file answers with SSH_FX_EOF, which ssh2's read turns into 0 bytes)
  const read = sftpCall<number>((cb) => s.read(handle, buf, 0, max, 0, (err, bytesRead) => cb(err, bytesRead)));
  await settleAll<unknown>([read, sftpCall((cb) => s.close(handle, (err) => cb(err)))]);
  return buf.subarray(0, await read);
}
