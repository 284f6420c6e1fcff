import { describe, expect, it } from 'vitest';
import { JsonReporter, PlainReporter, ListrReporter, summarize, throughputText } from '../../scripts/ui/reporter.ts';

describe('reporters', () => {
  it('plain: a line per event, results in begin order', async () => {
    const lines: string[] = [];
    const r = new PlainReporter((l) => lines.push(l));
    r.begin('provision', ['b', 'a']);
    r.update('a', { phase: 'connect' });
    r.done({ id: 'a', status: 'ok', phase: 'verify', message: '' });
    r.done({ id: 'b', status: 'failed', phase: 'connect', message: 'host key mismatch' });
    const res = await r.end();
    expect(res.map((x) => x.id)).toEqual(['b', 'a']);
    expect(lines).toEqual(['provision: 2 device(s)', 'a: connect', 'a: ok', 'b: failed in connect — host key mismatch']);
    expect(summarize(res)).toMatchObject({ ok: 1, failed: 1, exitCode: 1 });
  });
  it('json: silent, and unfinished devices count as failed', async () => {
    const r = new JsonReporter();
    r.begin('x', ['a', 'b']);
    r.done({ id: 'a', status: 'skipped', phase: 'preflight', message: 'already applied' });
    const res = await r.end();
    expect(res[1]).toEqual({ id: 'b', status: 'failed', phase: 'none', message: 'not finished' });
  });
  it('listr2: runs to the end without a TTY', async () => {
    const r = new ListrReporter();
    r.begin('flash', ['a', 'b']);
    r.update('a', { phase: 'write', bytesDone: 1024, bytesTotal: 4096 });
    r.done({ id: 'a', status: 'ok', phase: 'write', message: '' });
    r.done({ id: 'b', status: 'failed', phase: 'write', message: 'EIO' });
    const res = await r.end();
    expect(res.map((x) => x.status)).toEqual(['ok', 'failed']);
  });
  it('throughput and ETA', () => {
    expect(throughputText({ bytesDone: 50 * 1048576, bytesTotal: 100 * 1048576 }, 0, 1000)).toBe('50.0 MiB/100.0 MiB 50.0 MiB/s ETA 1s');
  });
});
