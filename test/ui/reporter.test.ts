import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { JsonReporter, makeReporter, summarize } from '../../scripts/ui/reporter.ts';
import { LiveReporter, LogReporter } from '../../scripts/ui/progress.ts';
import { Tally } from '../../scripts/ui/tally.ts';
import { groupedFailures, plainLine, stageText } from '../../scripts/ui/view.ts';

const PROVISION = ['connect', 'preflight', 'upload', 'apply', 'verify'];
const stage = (t: Tally, name: string, now: number) => t.snapshot(now).stages.find((s) => s.name === name)!;

describe('tally: counts per stage', () => {
  it('an item passes the stages before the one it is in; a result closes the stages after it', () => {
    const t = new Tally();
    t.begin('provision', ['a', 'b', 'c', 'd', 'e'], PROVISION, 0);
    t.update('a', { phase: 'connect' }, 0);
    t.update('a', { phase: 'upload' }, 1000);
    t.update('b', { phase: 'apply' }, 1000);
    t.done({ id: 'b', status: 'failed', phase: 'apply', message: 'exit 1' }, 2000);
    t.update('c', { phase: 'preflight' }, 1000);
    t.done({ id: 'c', status: 'skipped', phase: 'preflight', message: 'already applied' }, 2000);
    t.done({ id: 'd', status: 'ok', phase: 'verify', message: '' }, 2000);
    const s = t.snapshot(2000);
    expect(s).toMatchObject({ items: 5, ok: 1, failed: 1, skipped: 1, inFlight: 1 });
    // connect: a, b, c, d passed; e waiting
    expect(stage(t, 'connect', 2000)).toMatchObject({ total: 5, done: 4, failed: 0, active: 0 });
    // preflight: c skipped there; a, b, d passed
    expect(stage(t, 'preflight', 2000)).toMatchObject({ total: 5, done: 3, skipped: 1 });
    // upload: a in it; c is no longer counted
    expect(stage(t, 'upload', 2000)).toMatchObject({ total: 4, done: 2, active: 1 });
    expect(stage(t, 'apply', 2000)).toMatchObject({ total: 4, done: 1, failed: 1 });
    expect(stage(t, 'verify', 2000)).toMatchObject({ total: 3, done: 1 });
    expect(t.failures.map((f) => f.id)).toEqual(['b']);
    expect(t.slowest(3, 2000).map((f) => [f.id, f.stage, f.seconds])).toEqual([['a', 'upload', 2]]);
    expect(t.results().map((r) => r.status)).toEqual(['failed', 'failed', 'skipped', 'ok', 'failed']);
    expect(t.results()[4]).toMatchObject({ phase: 'none', message: 'not finished' });
  });

  it('a dry run (ok at preflight) leaves the later stages out of the totals', () => {
    const t = new Tally();
    t.begin('provision (dry run)', ['a'], PROVISION, 0);
    t.done({ id: 'a', status: 'ok', phase: 'preflight', message: 'plan' }, 10);
    expect(stage(t, 'preflight', 10)).toMatchObject({ total: 1, done: 1 });
    expect(stage(t, 'upload', 10)).toMatchObject({ total: 0, done: 0 });
    expect(stageText(stage(t, 'upload', 10))).toBe('upload 0/0 —');
  });

  it('build: batch stages count themselves, "done" passes every per-device stage, rate and ETA', () => {
    const t = new Tally();
    t.begin('build acme', ['a', 'b', 'c', 'd'], [{ name: 'keys', batch: true }, 'render', { name: 'images', phases: ['seed-image', 'disk'] }, 'write', { name: 'sign', batch: true }], 0);
    t.count('keys', 2, 4, 0);
    t.count('keys', 4, 4, 1000);
    t.update('a', { phase: 'render' }, 1000);
    t.update('a', { phase: 'disk' }, 1500);
    t.done({ id: 'a', status: 'ok', phase: 'done', message: '27 files' }, 2000);
    t.update('b', { phase: 'seed-image' }, 2000);
    t.done({ id: 'b', status: 'failed', phase: 'seed-image', message: 'ENOSPC' }, 2000);
    t.update('c', { phase: 'render' }, 2000);
    expect(stage(t, 'keys', 9000)).toMatchObject({ done: 4, total: 4, rate: 4 }); // finished: the rate stops at its last count
    expect(stage(t, 'images', 3000)).toMatchObject({ total: 4, done: 1, failed: 1 });
    const render = stage(t, 'render', 3000);
    expect(render).toMatchObject({ total: 4, done: 2, active: 1 });
    expect(render.rate).toBeCloseTo(1); // 2 in the 2 s since its first item
    expect(render.etaSeconds).toBeCloseTo(2);
    expect(stage(t, 'sign', 3000)).toMatchObject({ total: 0 });
    t.count('sign', 1, 1, 3000);
    expect(stage(t, 'sign', 3000)).toMatchObject({ total: 1, done: 1 });
    expect(stageText(render)).toBe('render 2/4 1.0/s ETA 2.0s');
    expect(stageText(stage(t, 'images', 3000))).toBe('images 1/4 0.7/s ETA 3.0s 1 failed');
  });

  it('with stages declared, another phase is only a label; without, phases become stages as they come', () => {
    const t = new Tally();
    t.begin('flash', ['a'], [{ name: 'write', phases: ['prepare', 'write', 'sync'] }, 'verify'], 0);
    t.update('a', { phase: 'sync' }, 0);
    t.update('a', { phase: 'done' }, 0);
    expect(t.snapshot(0).stages.map((x) => x.name)).toEqual(['write', 'verify']);
    expect(t.slowest(1, 0)[0]).toMatchObject({ stage: 'write', phase: 'done' });
    const u = new Tally();
    u.begin('x', ['a'], [], 0);
    u.update('a', { phase: 'one' }, 0);
    u.update('a', { phase: 'two' }, 0);
    expect(u.snapshot(0).stages.map((x) => [x.name, x.done, x.active])).toEqual([
      ['one', 1, 0],
      ['two', 0, 1],
    ]);
  });

  it('byte progress: a stage of cards adds up their bytes, with rate and ETA from them', () => {
    const t = new Tally();
    const MiB = 1048576;
    t.begin('flash 2 card(s)', ['a', 'b'], ['write', 'verify'], 0);
    t.update('a', { phase: 'write', bytesDone: 0, bytesTotal: 200 * MiB }, 0);
    t.update('a', { phase: 'write', bytesDone: 100 * MiB, bytesTotal: 200 * MiB }, 1000);
    t.update('b', { phase: 'write', bytesDone: 100 * MiB, bytesTotal: 200 * MiB }, 1000);
    const w = stage(t, 'write', 2000);
    expect(w).toMatchObject({ bytesDone: 200 * MiB, bytesTotal: 400 * MiB, bytesRate: 100 * MiB, etaSeconds: 2 });
    expect(stageText(w)).toBe('write 0/2 200.0 MiB/400.0 MiB 100.0 MiB/s ETA 2.0s');
    t.update('a', { phase: 'verify', bytesDone: 0, bytesTotal: 200 * MiB }, 2000);
    expect(stage(t, 'write', 2000)).toMatchObject({ done: 1, bytesDone: 300 * MiB });
  });
});

describe('views', () => {
  it('failures that read alike are grouped', () => {
    const f = (id: string, message: string) => ({ id, status: 'failed' as const, phase: 'connect', message });
    expect(groupedFailures([f('a', 'ECONNREFUSED'), f('b', 'timeout'), f('c', 'ECONNREFUSED')], 1)).toEqual(['2 failed in connect: ECONNREFUSED (a, +1 more)', 'b failed in connect: timeout']);
  });

  it('plain: a line of counts every interval, each failure once, the counts again at the end', async () => {
    const lines: string[] = [];
    const r = new LogReporter((l) => lines.push(l), 40);
    r.begin('provision', ['b', 'a'], PROVISION);
    r.update('a', { phase: 'connect' });
    r.done({ id: 'a', status: 'ok', phase: 'verify', message: '' });
    r.done({ id: 'b', status: 'failed', phase: 'connect', message: 'host key mismatch' });
    await new Promise((res) => setTimeout(res, 130));
    const res = await r.end();
    expect(res.map((x) => x.id)).toEqual(['b', 'a']);
    expect(lines[0]).toBe('provision: 2 device(s)');
    expect(lines[1]).toBe('✖ b failed in connect: host key mismatch');
    const counts = lines.slice(2);
    expect(counts.length).toBeGreaterThanOrEqual(2); // at least one tick and the final line
    expect(counts.at(-1)).toMatch(/^provision \d+(\.\d)?s: connect 1\/2 .* — 1 ok, 1 failed, 0 skipped of 2$/);
    expect(summarize(res)).toMatchObject({ ok: 1, failed: 1, exitCode: 1 });
  });

  it('--json and no terminal: plain lines on stderr; a terminal: the live view', () => {
    expect(makeReporter({ json: true, isTTY: true, err: () => {} })).toBeInstanceOf(LogReporter);
    expect(makeReporter({ json: false, isTTY: false, err: () => {} })).toBeInstanceOf(LogReporter);
    expect(makeReporter({ json: false, isTTY: true, err: () => {} })).toBeInstanceOf(LiveReporter);
  });

  it('live: runs to the end on any stream and lists the failures, grouped', async () => {
    let text = '';
    const stream = Object.assign(new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) }), { columns: 100, isTTY: false }) as unknown as NodeJS.WriteStream;
    const r = new LiveReporter({ stream, refreshMs: 10 });
    r.begin('flash', ['a', 'b'], ['write']);
    r.update('a', { phase: 'write', bytesDone: 1024, bytesTotal: 4096 });
    r.done({ id: 'a', status: 'ok', phase: 'write', message: '' });
    r.done({ id: 'b', status: 'failed', phase: 'write', message: 'EIO' });
    const res = await r.end();
    expect(res.map((x) => x.status)).toEqual(['ok', 'failed']);
    expect(text).toContain('flash: 2 devices');
    expect(text).toContain('failed:\n  b failed in write: EIO\n');
  });

  it('json: silent, and unfinished devices count as failed', async () => {
    const r = new JsonReporter();
    r.begin('x', ['a', 'b']);
    r.done({ id: 'a', status: 'skipped', phase: 'preflight', message: 'already applied' });
    const res = await r.end();
    expect(res[1]).toEqual({ id: 'b', status: 'failed', phase: 'none', message: 'not finished' });
  });

  it('plainLine names every stage', () => {
    const t = new Tally();
    t.begin('build x', ['a'], ['render', 'write'], 0);
    expect(plainLine(t.snapshot(0))).toBe('build x 0.0s: render 0/1 waiting · write 0/1 waiting — 0 ok, 0 failed, 0 skipped of 1');
  });
});
