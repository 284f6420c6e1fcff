// Phase upload: the bundle over SFTP into a fresh private staging directory (0700, created by mkdir, so
// nothing prepared by someone else is reused), then checked ON the device with sha256sum against
// SHA256SUMS — what arrived is what was built, whatever happened on the way.
// Small files (configs, secrets, the first-boot program: the usual bundle, ~25 files and ~80 KB) are read
// once, checked against the manifest from the very bytes that are sent, and go up in two bursts of
// pipelined requests after the staging mkdir (see ../sftp.ts); a large file, or what exceeds the
// per-device memory budget, streams from disk with ssh2's fastPut.
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { PhaseError } from '../errors.ts';
import { withTimeout } from '../session.ts';
import { fill, mkdir, openNew, sftpCall, settleAll } from '../sftp.ts';
import type { BundleFile } from '../bundle.ts';
import { SUMS_NAME } from '../../manifest/sums.ts';
import type { DeviceRun } from '../context.ts';
import { sha256Hex, sha256OfFile } from '../../util/hash.ts';
import { STAGING_PREFIX, STATE_DIR } from '../../device/layout.ts';

/** files up to this size are sent from memory in the bursts, up to SMALL_BUDGET per device; the rest stream */
export const SMALL_FILE = 1024 * 1024;
/** bytes of one device's bundle held in memory at once (hundreds of devices may be uploading) */
export const SMALL_BUDGET = 4 * 1024 * 1024;

// large local files are checked against the manifest once per run, however many devices share them
const localChecks = new Map<string, Promise<string>>();

function changed(file: string, got: string, f: BundleFile): PhaseError {
  return new PhaseError('upload', `${file} changed since the build (sha256 ${got}, manifest says ${f.sha256}); run edgeforge build again`, false);
}

/** which files go up from memory: small ones, smallest first, within the budget */
export function inMemory(files: readonly BundleFile[]): Set<BundleFile> {
  const out = new Set<BundleFile>();
  let used = 0;
  for (const f of [...files].sort((a, b) => a.bytes - b.bytes)) {
    if (f.bytes > SMALL_FILE || used + f.bytes > SMALL_BUDGET) break;
    used += f.bytes;
    out.add(f);
  }
  return out;
}

function missing(file: string): PhaseError {
  return new PhaseError('upload', `${file} is missing: the build output is incomplete; run edgeforge build again`, false);
}

/** a small file's bytes, checked against the manifest from the very bytes that are sent */
async function readSmallChecked(outDir: string, f: BundleFile): Promise<Buffer> {
  const file = path.join(outDir, f.source);
  const bytes = await fs.readFile(file).catch(() => {
    throw missing(file);
  });
  const got = sha256Hex(bytes);
  if (got !== f.sha256) throw changed(file, got, f);
  return bytes;
}

/** a large file's path, its content checked against the manifest (once per run) */
async function checkLarge(outDir: string, f: BundleFile): Promise<string> {
  const file = path.join(outDir, f.source);
  const st = await fs.stat(file).catch(() => undefined);
  if (!st?.isFile()) throw missing(file);
  const key = `${file}\0${st.size}\0${st.mtimeMs}`;
  let p = localChecks.get(key);
  if (!p) localChecks.set(key, (p = sha256OfFile(file).then((r) => r.sha256)));
  const got = await p;
  if (got !== f.sha256) throw changed(file, got, f);
  return file;
}

/** every parent directory of the bundle's files once, parents before children */
function bundleDirs(files: readonly { rel: string }[]): string[] {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.rel.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort((x, y) => x.split('/').length - y.split('/').length || (x < y ? -1 : 1));
}

export async function upload(run: DeviceRun): Promise<string> {
  const b = run.bundle;
  const facts = run.facts!;
  const mem = inMemory(b.files);
  const small = await Promise.all([...mem].map(async (f) => ({ rel: f.rel, mode: f.mode, bytes: await readSmallChecked(run.opts.outDir, f) })));
  const large = await Promise.all(b.files.filter((f) => !mem.has(f)).map(async (f) => ({ f, file: await checkLarge(run.opts.outDir, f) })));
  const staging = `${facts.root}${STAGING_PREFIX}${b.hash.slice(0, 12)}-${randomBytes(4).toString('hex')}`;
  // the deadline grows with the size: at least 512 KiB/s on top of the base timeout
  const deadline = run.timeouts.upload + Math.ceil(b.bytes / (512 * 1024)) * 1000;
  const progress = (done: number) => {
    run.progress({ phase: 'upload', bytesDone: done, bytesTotal: b.bytes });
    run.opts.hooks?.onUploadProgress?.(run.device.id, done, b.bytes);
  };

  const work = async (s: SFTPWrapper) => {
    // burst 1: the staging directory, alone: everything after it relies on it being ours and new
    try {
      await mkdir(s, staging, 0o700);
    } catch (err) {
      throw new PhaseError('upload', `cannot create the staging directory ${staging}: ${(err as Error).message}`, false);
    }
    run.staging = staging;
    run.log.line(`upload: ${b.files.length} file(s), ${b.bytes} bytes to ${staging}`);

    // burst 2: the sub-directories, then a new file for each small one and for SHA256SUMS. A root login
    // also creates the device's state directory if it is missing (one mkdir process fewer in apply; a
    // failure here is left to apply's own mkdir -p).
    const sent = [...small, { rel: SUMS_NAME, mode: 0o644, bytes: Buffer.from(b.sums) }];
    const burst: Promise<unknown>[] = [];
    if (facts.uid === 0 && !facts.stateDir) burst.push(mkdir(s, `${facts.root}${STATE_DIR}`, 0o700).catch(() => undefined));
    for (const d of bundleDirs(b.files)) burst.push(mkdir(s, `${staging}/${d}`, 0o700));
    const opens = sent.map((f) => openNew(s, `${staging}/${f.rel}`, f.mode));
    await settleAll([...burst, ...opens]).catch(async (err) => {
      // close what did open: the staging directory is removed by the next apply on this device
      await Promise.all(opens.map((o) => o.then((h) => sftpCall((cb) => s.close(h, (e) => cb(e)))).catch(() => undefined)));
      throw err;
    });
    const handles = await Promise.all(opens);

    // burst 3: mode, bytes and close of every small file
    await settleAll(sent.map((f, i) => fill(s, handles[i], f.bytes, f.mode)));
    let done = small.reduce((n, f) => n + f.bytes.length, 0);
    progress(done);

    // large files, one after the other, streaming from disk
    for (const { f, file } of large) {
      let last = 0;
      await sftpCall((cb) =>
        s.fastPut(
          file,
          `${staging}/${f.rel}`,
          {
            mode: f.mode,
            step: (total: number) => {
              done += total - last;
              last = total;
              progress(done);
            },
          },
          (err) => cb(err),
        ),
      );
      done += f.bytes - last;
    }
  };
  // a dropped connection (watch: ssh2 leaves requests on a dead channel unanswered) or a stall surfaces
  // here; the engine retries those from connect
  const session = run.session!;
  await withTimeout(session.watch(session.sftp().then(work)), deadline, 'upload');

  // the sha256 check on the device runs at the start of the apply command (one round trip, one shell
  // fewer per device): see apply.ts, which reports a mismatch as an upload failure
  run.log.line(`upload: done (${b.bytes} bytes); sha256 is checked on the device before apply`);
  return staging;
}
