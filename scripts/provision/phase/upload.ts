// Phase upload: the bundle over SFTP into a fresh private staging directory (0700, created by mkdir, so
// nothing prepared by someone else is reused), then checked ON the device with sha256sum against
// SHA256SUMS — what arrived is what was built, whatever happened on the way.
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { PhaseError } from '../errors.ts';
import { withTimeout } from '../session.ts';
import { SUMS_NAME, type BundleFile } from '../bundle.ts';
import type { DeviceRun } from '../context.ts';
import { sha256OfFile } from '../../util/hash.ts';

// local files are checked against the manifest once per run, however many devices share them
const localChecks = new Map<string, Promise<string>>();


async function checkLocal(outDir: string, f: BundleFile): Promise<string> {
  const file = path.join(outDir, f.source);
  const st = await fs.stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new PhaseError('upload', `${file} is missing: the build output is incomplete; run edgeforge build again`, false);
  const key = `${file}\0${st.size}\0${st.mtimeMs}`;
  let p = localChecks.get(key);
  if (!p) localChecks.set(key, (p = sha256OfFile(file).then((r) => r.sha256)));
  const got = await p;
  if (got !== f.sha256) throw new PhaseError('upload', `${file} changed since the build (sha256 ${got}, manifest says ${f.sha256}); run edgeforge build again`, false);
  return file;
}

function sftpCall<T>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

/** mkdir that refuses an existing path: a fresh, private directory (mode 0700) nobody else prepared */
function mkdirPrivate(s: SFTPWrapper, dir: string): Promise<void> {
  return sftpCall<void>((cb) => s.mkdir(dir, { mode: 0o700 }, (err) => cb(err)));
}

export async function upload(run: DeviceRun): Promise<string> {
  const b = run.bundle;
  const locals = await Promise.all(b.files.map((f) => checkLocal(run.opts.outDir, f)));
  const staging = `${run.facts!.root}/var/tmp/edgeforge-bundle-${b.hash.slice(0, 12)}-${randomBytes(4).toString('hex')}`;
  // the deadline grows with the size: at least 512 KiB/s on top of the base timeout
  const deadline = run.timeouts.upload + Math.ceil(b.bytes / (512 * 1024)) * 1000;

  const work = async () => {
    const s = await run.session!.sftp();
    try {
      await mkdirPrivate(s, staging);
    } catch (err) {
      throw new PhaseError('upload', `cannot create the staging directory ${staging}: ${(err as Error).message}`, false);
    }
    run.staging = staging;
    run.log.line(`upload: ${b.files.length} file(s), ${b.bytes} bytes to ${staging}`);
    // every parent directory once, parents before children (the staging directory is fresh: none exist)
    const dirs = new Set<string>();
    for (const f of b.files) {
      const parts = f.rel.split('/').slice(0, -1);
      for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    for (const d of [...dirs].sort((x, y) => x.split('/').length - y.split('/').length || (x < y ? -1 : 1))) {
      await mkdirPrivate(s, `${staging}/${d}`);
    }
    let done = 0;
    for (let i = 0; i < b.files.length; i++) {
      const f = b.files[i];
      let last = 0;
      await sftpCall<void>((cb) =>
        s.fastPut(locals[i], `${staging}/${f.rel}`, {
          mode: f.mode,
          step: (total: number) => {
            done += total - last;
            last = total;
            run.progress({ phase: 'upload', bytesDone: done, bytesTotal: b.bytes });
            run.opts.hooks?.onUploadProgress?.(run.device.id, done, b.bytes);
          },
        }, (err) => cb(err)),
      );
      done += f.bytes - last;
    }
    await sftpCall<void>((cb) => s.writeFile(`${staging}/${SUMS_NAME}`, b.sums, { mode: 0o644 }, (err) => cb(err)));
  };
  // a dropped connection or a stall surfaces here; the engine retries those from connect
  await withTimeout(work(), deadline, 'upload');

  // the sha256 check on the device runs at the start of the apply command (one round trip, one shell
  // fewer per device): see apply.ts, which reports a mismatch as an upload failure
  run.log.line(`upload: done (${b.bytes} bytes); sha256 is checked on the device before apply`);
  return staging;
}
