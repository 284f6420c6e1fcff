// npm run bench:flash — edgeforge flash (1 and 4 targets) beside `bmaptool copy` and plain `dd bs=4M` of the
// same sparse image, in the same run. Targets are regular files on the same disk as the base (one virtio
// disk on this machine): four targets share one disk's write bandwidth, unlike four SD cards on a hub.
// Every tool ends with fsync (bmaptool does; dd gets conv=fsync, as people run it; flash fdatasyncs).
// The base is warm in the page cache for every tool (it is hashed once before the runs).
import { spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, promises as fs, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareBase } from '../disk/base.ts';
import { bmapRanges, bmapXml } from '../disk/bmap.ts';
import { encodeDelta } from '../disk/delta.ts';
import { writeBaseRecord, deviceDeltaPath } from '../disk/output.ts';
import { totalLength } from '../disk/extents.ts';
import { runFlash, type ResolvedTarget } from '../flash/flash.ts';
import { FileTarget, type TargetSink } from '../flash/target.ts';
import { JsonReporter, formatBytes } from '../ui/reporter.ts';

const MiB = 1024 * 1024;
const IMAGE = Number(process.env.BENCH_IMAGE_MIB ?? 1536) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CARD_MIBS = Number(process.env.BENCH_CARD_MIBS ?? 40);
const shm = process.env.BENCH_SHM ?? '/dev/shm';
const work = mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ef-bench-flash-'));

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

/** A raspi-like sparse layout: boot area, a FAT with firmware, an ext4-ish root with fragmented extents. */
async function makeBase(file: string): Promise<void> {
  const fh = await fs.open(file, 'w');
  await fh.truncate(IMAGE);
  const put = async (offset: number, length: number) => {
    for (let o = 0; o < length; o += 4 * MiB) await fh.write(randomBytes(Math.min(4 * MiB, length - o)), 0, Math.min(4 * MiB, length - o), offset + o);
  };
  await put(0, 64 * 1024); // MBR + gap
  await put(4 * MiB, 48 * MiB); // boot FAT: firmware, kernel, initrd
  const root = 260 * MiB;
  for (let i = 0; i < 32; i++) await put(root + i * 36 * MiB, 7 * MiB + (i % 5) * MiB); // root fs data, spread out
  for (let i = 0; i < 300; i++) await put(root + i * 3 * MiB + 2 * MiB + (i % 7) * 4096 * 3, 64 * 1024); // metadata/small files
  await fh.sync();
  await fh.close();
}

/** A simulated SD card: a file that accepts at most `rate` bytes per second (its own bandwidth, as on a hub). */
async function rateLimited(t: ResolvedTarget, rate: number): Promise<TargetSink> {
  const inner = await FileTarget.open(t.path);
  const start = Date.now();
  let bytes = 0;
  return {
    path: inner.path,
    kind: inner.kind,
    capacity: inner.capacity,
    prepare: (a) => inner.prepare(a),
    async write(d, o) {
      bytes += d.length;
      const due = start + (bytes / rate) * 1000;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      return inner.write(d, o);
    },
    sync: () => inner.sync(),
    reader: () => inner.reader(),
    close: () => inner.close(),
  };
}

interface Row {
  what: string;
  seconds: number;
  bytes: number;
  note?: string;
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ s: number; v: T }> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return { s: Number(process.hrtime.bigint() - t) / 1e9, v };
}

/** What every round flashes: the base, a build output with four devices' deltas, and the base's .bmap for bmaptool. */
interface Bench {
  basePath: string;
  mapped: number;
  outDir: string;
  ids: string[];
  bmap: string;
}

async function prepareBench(): Promise<Bench> {
  const basePath = path.join(work, 'base.img');
  await makeBase(basePath);
  const sha = createHash('sha256');
  for await (const c of (await fs.open(basePath)).createReadStream({ highWaterMark: 4 * MiB })) sha.update(c as Buffer);
  const base = await prepareBase({ path: basePath, sha256: sha.digest('hex') });
  const mapped = totalLength(base.mapped);
  const outDir = path.join(work, 'out');
  await writeBaseRecord(outDir, base, 'bench');
  // four devices, each with its own identity: a few seed blocks in the boot FAT and one in a hole
  const ids = ['bench-001', 'bench-002', 'bench-003', 'bench-004'];
  for (const [i, id] of ids.entries()) {
    const extents = [
      { offset: 8 * MiB + i * 4096, length: 16384 },
      { offset: 40 * MiB, length: 8192 },
      { offset: 200 * MiB, length: 4096 }, // in a hole of the base
    ];
    const delta = encodeDelta({ blockSize: 4096, baseSize: IMAGE, baseSha256: base.rawSha256, extents, data: extents.map((x) => randomBytes(x.length)) });
    mkdirSync(path.dirname(path.join(outDir, deviceDeltaPath(id))), { recursive: true });
    writeFileSync(path.join(outDir, deviceDeltaPath(id)), delta);
  }
  const bmap = path.join(work, 'base.bmap');
  const bfh = await fs.open(basePath);
  writeFileSync(bmap, bmapXml(IMAGE, 4096, await bmapRanges(base.mapped, 4096, IMAGE, async (o, n) => (await bfh.read(Buffer.alloc(n), 0, n, o)).buffer)));
  await bfh.close();
  console.log(`image: ${formatBytes(IMAGE)} apparent, ${formatBytes(mapped)} mapped in ${base.mapped.length} ranges; targets: regular files in ${work} (same disk as the base)`);
  return { basePath, mapped, outDir, ids, bmap };
}

const t = (n: string) => path.join(work, n);
function clean(): void {
  for (const f of ['bmap.img', 'dd.img', 'one.img', 'q0.img', 'q1.img', 'q2.img', 'q3.img']) rmSync(t(f), { force: true });
  sh('sync', []);
}

/** One round on the disk: bmaptool (with and without its checks), flash to 1 and 4 targets (and with --verify), then tmpfs, then dd. */
async function round(b: Bench, keep: (r: Row) => void): Promise<void> {
  clean();
  let m = await timed(() => sh('bmaptool', ['-q', 'copy', '--bmap', b.bmap, b.basePath, t('bmap.img')]));
  keep({ what: 'bmaptool copy (checks range sha256 while copying)', seconds: m.s, bytes: b.mapped });
  clean();
  m = await timed(() => sh('bmaptool', ['-q', 'copy', '--no-verify', '--bmap', b.bmap, b.basePath, t('bmap.img')]));
  keep({ what: 'bmaptool copy --no-verify', seconds: m.s, bytes: b.mapped });
  clean();
  const one = await timed(() => runFlash({ outDir: b.outDir, requests: [{ device: b.ids[0], target: t('one.img') }], reporter: new JsonReporter() }));
  if (one.v.results[0].status !== 'ok') throw new Error(one.v.results[0].message);
  keep({ what: 'edgeforge flash, 1 target', seconds: one.s, bytes: one.v.bytesWritten });
  clean();
  const four = await timed(() => runFlash({ outDir: b.outDir, requests: b.ids.map((id, i) => ({ device: id, target: t(`q${i}.img`) })), reporter: new JsonReporter() }));
  if (four.v.results.some((r) => r.status !== 'ok')) throw new Error(JSON.stringify(four.v.results));
  const own = four.v.details.reduce((n, d) => n + d.ownBaseReads, 0);
  keep({ what: 'edgeforge flash, 4 targets', seconds: four.s, bytes: four.v.bytesWritten, note: `base read: ${formatBytes(four.v.sharedBaseReads)} shared + ${formatBytes(own)} by cut-loose cards` });
  clean();
  const fourV = await timed(() => runFlash({ outDir: b.outDir, verify: true, requests: b.ids.map((id, i) => ({ device: id, target: t(`q${i}.img`) })), reporter: new JsonReporter() }));
  if (fourV.v.results.some((r) => r.status !== 'ok')) throw new Error(JSON.stringify(fourV.v.results));
  keep({ what: 'edgeforge flash --verify, 4 targets', seconds: fourV.s, bytes: fourV.v.bytesWritten, note: fourV.v.details[0].verifyMethod });
  clean();
  await tmpfsRuns(b, keep);
  m = await timed(() => sh('dd', [`if=${b.basePath}`, `of=${t('dd.img')}`, 'bs=4M', 'conv=fsync', 'status=none']));
  keep({ what: 'dd bs=4M conv=fsync (whole image)', seconds: m.s, bytes: IMAGE });
  clean();
}

/** The engine alone: memory-backed targets, no shared disk behind them; then simulated cards of their own bandwidth. */
async function tmpfsRuns(b: Bench, keep: (r: Row) => void): Promise<void> {
  const shmDir = mkdtempSync(path.join(shm, 'ef-bench-flash-'));
  try {
    for (const n of [1, 4]) {
      const r = await timed(() => runFlash({ outDir: b.outDir, requests: b.ids.slice(0, n).map((id, i) => ({ device: id, target: path.join(shmDir, `t${i}.img`) })), reporter: new JsonReporter() }));
      if (r.v.results.some((x) => x.status !== 'ok')) throw new Error(JSON.stringify(r.v.results));
      keep({ what: `edgeforge flash, ${n} target${n > 1 ? 's' : ''} on tmpfs`, seconds: r.s, bytes: r.v.bytesWritten });
    }
    for (const n of [1, 4]) {
      const r = await timed(() =>
        runFlash({
          outDir: b.outDir,
          requests: b.ids.slice(0, n).map((id, i) => ({ device: id, target: path.join(shmDir, `c${i}.img`) })),
          reporter: new JsonReporter(),
          openTarget: (t) => rateLimited(t, CARD_MIBS * MiB),
        }),
      );
      if (r.v.results.some((x) => x.status !== 'ok')) throw new Error(JSON.stringify(r.v.results));
      const own = r.v.details.reduce((k, d) => k + d.ownBaseReads, 0);
      keep({
        what: `edgeforge flash, ${n} simulated ${CARD_MIBS} MiB/s card${n > 1 ? 's' : ''}`,
        seconds: r.s,
        bytes: r.v.bytesWritten,
        note: n > 1 ? `base read: ${formatBytes(r.v.sharedBaseReads)} shared + ${formatBytes(own)} by cut-loose cards` : undefined,
      });
    }
  } finally {
    rmSync(shmDir, { recursive: true, force: true });
  }
}

/** The best of the rounds, each figure beside its anchor (bmaptool, 1 target) and its goal. */
function summary(best: Map<string, Row>): void {
  const g = (k: string) => best.get(k)!.seconds;
  const ratio1 = g('edgeforge flash, 1 target') / g('bmaptool copy (checks range sha256 while copying)');
  const ratio1nv = g('edgeforge flash, 1 target') / g('bmaptool copy --no-verify');
  const ratio4 = g('edgeforge flash, 4 targets') / g('edgeforge flash, 1 target');
  const ratio4shm = g('edgeforge flash, 4 targets on tmpfs') / g('edgeforge flash, 1 target on tmpfs');
  const ratio4card = g(`edgeforge flash, 4 simulated ${CARD_MIBS} MiB/s cards`) / g(`edgeforge flash, 1 simulated ${CARD_MIBS} MiB/s card`);
  console.log(`\nbest of ${ROUNDS}:`);
  console.log('| run | time | bytes written |\n|---|---:|---:|');
  for (const r of best.values()) console.log(`| ${r.what}${r.note ? ` — ${r.note}` : ''} | ${r.seconds.toFixed(2)} s | ${formatBytes(r.bytes)} (${r.bytes}) |`);
  console.log(`\nflash 1 target / bmaptool copy: ${ratio1.toFixed(2)}x (goal <= 1.1x) ${ratio1 <= 1.1 ? 'MET' : 'NOT MET'}; / bmaptool --no-verify: ${ratio1nv.toFixed(2)}x`);
  console.log(`flash 4 targets / 1 target, same disk: ${ratio4.toFixed(2)}x (goal <= 1.5x) ${ratio4 <= 1.5 ? 'MET' : 'NOT MET'} — 4x the bytes through one disk`);
  console.log(`flash 4 targets / 1 target, tmpfs: ${ratio4shm.toFixed(2)}x; simulated ${CARD_MIBS} MiB/s cards: ${ratio4card.toFixed(2)}x (goal <= 1.5x) ${ratio4card <= 1.5 ? 'MET' : 'NOT MET'}`);
  console.log(
    `load average at end: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
}

async function main(): Promise<void> {
  const b = await prepareBench();
  const best = new Map<string, Row>();
  const keep = (r: Row) => {
    const prev = best.get(r.what);
    if (!prev || r.seconds < prev.seconds) best.set(r.what, r);
    console.log(`  ${r.what.padEnd(44)} ${r.seconds.toFixed(2).padStart(7)} s  ${formatBytes(r.bytes).padStart(10)} written${r.note ? `  (${r.note})` : ''}`);
  };
  for (let i = 1; i <= ROUNDS; i++) {
    console.log(`round ${i}/${ROUNDS}`);
    await round(b, keep);
  }
  if (ROUNDS) summary(best);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => (process.env.BENCH_KEEP ? console.log('kept', work) : rmSync(work, { recursive: true, force: true })));
