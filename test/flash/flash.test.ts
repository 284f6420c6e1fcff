// The flasher against regular files: four cards at once, each byte-identical to `image materialize` for
// its own device; faults injected through wrapped targets (a card that dies mid-write, a slow card, a
// byte flipped after writing); the first MiB written last.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { openSync, closeSync, existsSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlash, type ResolvedTarget } from '../../scripts/flash/flash.ts';
import { FileTarget, type TargetSink } from '../../scripts/flash/target.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { readBaseRecord } from '../../scripts/disk/output.ts';
import { buildOut, cleanupTmp, sha, tmp, type BuiltOut } from './fixture.ts';
const HAVE_TOOLS = requireTools(['mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/flash/flash.test.ts');

afterAll(cleanupTmp);

let out: BuiltOut;
const refs = new Map<string, string>();
const IDS = ['plant7-arm-001', 'plant7-arm-002', 'plant7-arm-003', 'plant7-arm-004'];
// small chunks and queues: many windows, so queueing and cut-loose paths are exercised on a small image
const ENGINE = { chunkSize: 256 * 1024, queueDepth: 2, detachAfterMs: 100 };

beforeAll(async () => {
  out = await buildOut('gpt', IDS, 'uefi-gpt'); // GPT: each delta adds a CIDATA partition inside a hole of the base
  for (const id of IDS) refs.set(id, sha(await out.materialized(id)));
});

/** A target wrapper: every call passes through `hooks` first (fault injection). */
function wrap(inner: TargetSink, hooks: { write?: (data: Uint8Array, offset: number) => Promise<void> | void; reader?: () => Promise<void> | void; sync?: () => void }): TargetSink {
  return {
    path: inner.path,
    kind: inner.kind,
    capacity: inner.capacity,
    prepare: (s, h) => inner.prepare(s, h),
    async write(d, o) {
      await hooks.write?.(d, o);
      return inner.write(d, o);
    },
    async sync() {
      hooks.sync?.();
      return inner.sync();
    },
    async reader() {
      await hooks.reader?.();
      return inner.reader();
    },
    close: () => inner.close(),
  };
}

function targets(dir: string) {
  return IDS.map((id) => ({ device: id, target: path.join(dir, `${id}.img`) }));
}

describe.runIf(HAVE_TOOLS)('flash to files', () => {
  it('writes four cards at once, each with its own identity, byte-identical to image materialize, sparse, base read once', async () => {
    const dir = tmp('four');
    const r = await runFlash({ outDir: out.outDir, requests: targets(dir), verify: true, reporter: new JsonReporter(), engine: ENGINE });
    expect(r.results.map((x) => x.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    const shas = IDS.map((id) => sha(readFileSync(path.join(dir, `${id}.img`))));
    expect(shas).toEqual(IDS.map((id) => refs.get(id)));
    expect(new Set(shas).size).toBe(4); // each card its own identity
    for (const x of r.results) expect(x.message).toMatch(/verified by read-back \((O_DIRECT|regular file: O_DIRECT not supported.*)\)/);
    const rec = await readBaseRecord(out.outDir);
    const mapped = rec.mapped.reduce((n, [, l]) => n + l, 0);
    for (const d of r.details) {
      expect(d.bytesWritten).toBeGreaterThanOrEqual(mapped); // mapped + the delta's blocks in holes
      expect(d.bytesWritten).toBeLessThan(mapped + 5 * 1024 * 1024);
      const st = statSync(path.join(dir, `${d.id}.img`));
      expect(st.size).toBe(out.baseSize);
      expect(st.blocks * 512).toBeLessThan(st.size / 2); // holes stayed holes
      expect(st.mode & 0o777).toBe(0o600); // the image carries the device's secrets
    }
    // the shared source read the union of what the cards need once, not once per card
    expect(r.sharedBaseReads).toBeLessThan(mapped + 5 * 1024 * 1024);
  });

  it('a card that fails mid-write fails alone, names the offset, and is left without a partition table', async () => {
    const dir = tmp('fail');
    let written = 0;
    const r = await runFlash({
      outDir: out.outDir,
      requests: targets(dir),
      verify: true,
      reporter: new JsonReporter(),
      engine: ENGINE,
      openTarget: async (t: ResolvedTarget, id) => {
        const inner = await FileTarget.open(t.path);
        if (id !== IDS[1]) return inner;
        return wrap(inner, {
          write(d) {
            written += d.length;
            if (written > 1024 * 1024) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          },
        });
      },
    });
    expect(r.results.map((x) => x.status)).toEqual(['ok', 'failed', 'ok', 'ok']);
    expect(r.results[1].phase).toBe('write');
    expect(r.results[1].message).toMatch(/write failed at offset \d+: EIO/);
    for (const id of [IDS[0], IDS[2], IDS[3]]) expect(sha(readFileSync(path.join(dir, `${id}.img`)))).toBe(refs.get(id));
    // the first MiB (MBR/GPT) is written last: the dead card has none
    const head = readFileSync(path.join(dir, `${IDS[1]}.img`)).subarray(0, 1024 * 1024);
    expect(head.every((b) => b === 0)).toBe(true);
  });

  it('writes the first MiB only after everything else is written and synced', async () => {
    const dir = tmp('order');
    const log: string[] = [];
    const r = await runFlash({
      outDir: out.outDir,
      requests: [{ device: IDS[0], target: path.join(dir, 'a.img') }],
      reporter: new JsonReporter(),
      engine: ENGINE,
      openTarget: async (t) => wrap(await FileTarget.open(t.path), { write: (_d, o) => void log.push(o < 1024 * 1024 ? 'head' : 'body'), sync: () => void log.push('sync') }),
    });
    expect(r.results[0].status).toBe('ok');
    const firstHead = log.indexOf('head');
    expect(firstHead).toBeGreaterThan(0);
    expect(log.slice(0, firstHead)).toContain('body');
    expect(log[firstHead - 1]).toBe('sync');
    expect(log.slice(firstHead).filter((x) => x === 'body')).toEqual([]);
    expect(log[log.length - 1]).toBe('sync');
    expect(sha(readFileSync(path.join(dir, 'a.img')))).toBe(refs.get(IDS[0]));
  });

  it('a slow card is cut loose after its queue fills instead of holding the others back', async () => {
    const dir = tmp('slow');
    const finished = new Map<string, number>();
    const { flashAll } = await import('../../scripts/flash/engine.ts');
    const { loadFlashInputs } = await import('../../scripts/flash/build-output.ts');
    const inputs = await loadFlashInputs(out.outDir);
    const jobs = await Promise.all(
      IDS.slice(0, 3).map(async (id, i) => {
        const inner = await FileTarget.open(path.join(dir, `${id}.img`));
        const target = i === 0 ? wrap(inner, { write: () => new Promise((r) => setTimeout(r, 15)) }) : inner;
        return { id, target, delta: (await inputs.delta(id)).delta };
      }),
    );
    const r = await flashAll(inputs.base, jobs, { ...ENGINE, progress: (id, p) => p.phase === 'done' && finished.set(id, Date.now()) });
    expect(r.results.map((x) => x.status)).toEqual(['ok', 'ok', 'ok']);
    expect(r.results[0].ownBaseReads).toBeGreaterThan(0); // the slow one read the base itself after falling behind
    expect(r.results[1].ownBaseReads).toBe(0);
    expect(finished.get(IDS[1])!).toBeLessThan(finished.get(IDS[0])!);
    for (const id of IDS.slice(0, 3)) expect(sha(readFileSync(path.join(dir, `${id}.img`)))).toBe(refs.get(id));
  });

  it('cards working at different speeds never see a window buffer reused under them (the pool returns one only when every card is done)', async () => {
    const dir = tmp('jitter');
    const { flashAll } = await import('../../scripts/flash/engine.ts');
    const { loadFlashInputs } = await import('../../scripts/flash/build-output.ts');
    const inputs = await loadFlashInputs(out.outDir);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 4;
    const jobs = await Promise.all(
      IDS.map(async (id) => {
        const inner = await FileTarget.open(path.join(dir, `${id}.img`));
        // each write waits 0-3 ms: the cards drift apart, so chunks are released in every order
        return { id, target: wrap(inner, { write: () => new Promise((r) => setTimeout(r, rnd())) }), delta: (await inputs.delta(id)).delta };
      }),
    );
    const r = await flashAll(inputs.base, jobs, { chunkSize: 64 * 1024, queueDepth: 3, detach: false });
    expect(r.results.map((x) => x.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    for (const id of IDS) expect(sha(readFileSync(path.join(dir, `${id}.img`))), id).toBe(refs.get(id));
  });

  it('--verify catches a byte flipped after writing and names its offset; without --verify it goes unnoticed', async () => {
    const rec = await readBaseRecord(out.outDir);
    const [o, l] = rec.mapped.find(([off, len]) => off + len > 2 * 1024 * 1024)!;
    const victim = Math.max(o, 2 * 1024 * 1024) + 1234;
    expect(victim).toBeLessThan(o + l);
    const flipper = (file: string) => () => {
      const fd = openSync(file, 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, victim);
      b[0] ^= 0x40;
      writeSync(fd, b, 0, 1, victim);
      closeSync(fd);
    };
    for (const verify of [true, false]) {
      const dir = tmp('flip');
      const file = path.join(dir, 'a.img');
      const other = path.join(dir, 'b.img');
      const r = await runFlash({
        outDir: out.outDir,
        requests: [
          { device: IDS[0], target: file },
          { device: IDS[1], target: other },
        ],
        verify,
        reporter: new JsonReporter(),
        engine: ENGINE,
        // the flip lands after the last sync, just before read-back (or at the end, without --verify)
        openTarget: async (t, id) => (id === IDS[0] ? wrap(await FileTarget.open(t.path), { reader: flipper(t.path) }) : FileTarget.open(t.path)),
      });
      if (verify) {
        expect(r.results[0].status).toBe('failed');
        expect(r.results[0].phase).toBe('verify');
        expect(r.results[0].message).toContain(`offset ${victim} (0x${victim.toString(16)})`);
        expect(r.details[0].mismatchOffset).toBe(victim);
        expect(r.results[1].status).toBe('ok');
      } else {
        flipper(file)();
        expect(r.results[0].status).toBe('ok');
        expect(sha(readFileSync(file))).not.toBe(refs.get(IDS[0]));
      }
    }
  });

  it('refuses the base image as a target, duplicate targets, and a delta that does not match the manifest', async () => {
    const rec = await readBaseRecord(out.outDir);
    const dir = tmp('refuse');
    const before = sha(readFileSync(rec.raw.path));
    const r = await runFlash({ outDir: out.outDir, requests: [{ device: IDS[0], target: rec.raw.path }], reporter: new JsonReporter() });
    expect(r.results[0]).toMatchObject({ status: 'failed', phase: 'preflight' });
    expect(r.results[0].message).toMatch(/base image itself/);
    expect(sha(readFileSync(rec.raw.path))).toBe(before);
    await expect(
      runFlash({
        outDir: out.outDir,
        requests: [
          { device: IDS[0], target: path.join(dir, 'x.img') },
          { device: IDS[1], target: path.join(dir, 'x.img') },
        ],
        reporter: new JsonReporter(),
      }),
    ).rejects.toThrow(/given twice/);
    const r2 = await runFlash({ outDir: out.outDir, requests: [{ device: 'not-built-999', target: path.join(dir, 'y.img') }], reporter: new JsonReporter() });
    expect(r2.results[0].message).toMatch(/not in .*manifest\.json/);
    // a delta changed after the build (the manifest pins its sha256) is never written
    const deltaFile = path.join(out.outDir, 'devices', IDS[3], 'disk.delta');
    const bytes = readFileSync(deltaFile);
    bytes[100] ^= 1;
    writeFileSync(deltaFile, bytes);
    const r3 = await runFlash({ outDir: out.outDir, requests: [{ device: IDS[3], target: path.join(dir, 'z.img') }], reporter: new JsonReporter() });
    expect(r3.results[0]).toMatchObject({ status: 'failed', phase: 'preflight' });
    expect(r3.results[0].message).toMatch(/but the manifest lists/);
    expect(existsSync(path.join(dir, 'z.img'))).toBe(false);
  });
});
