// The provision progress view: running totals and one line per device in flight (listr2, no TTY here).
import { describe, expect, it } from 'vitest';
import { InFlightReporter } from '../../scripts/ui/inflight.ts';

describe('in-flight reporter', () => {
  it('keeps a slot per device in flight, counts results, lists failures at the end in begin order', async () => {
    const lines: string[] = [];
    const r = new InFlightReporter(2, (l) => lines.push(l));
    r.begin('provision', ['a', 'b', 'c']);
    r.update('a', { phase: 'connect' });
    r.update('b', { phase: 'upload', bytesDone: 10, bytesTotal: 100 });
    r.update('c', { phase: 'connect' }); // no free slot: counted, not shown
    expect((r as unknown as { slots: (string | undefined)[] }).slots).toEqual(['a', 'b']);
    r.done({ id: 'a', status: 'ok', phase: 'verify', message: '' });
    r.update('c', { phase: 'preflight' });
    expect((r as unknown as { slots: (string | undefined)[] }).slots).toEqual(['c', 'b']);
    r.done({ id: 'b', status: 'failed', phase: 'upload', message: 'connection closed' });
    r.done({ id: 'c', status: 'skipped', phase: 'preflight', message: 'already at bundle x' });
    const res = await r.end();
    expect(res.map((x) => x.id)).toEqual(['a', 'b', 'c']);
    expect(lines).toEqual(['b: failed in upload — connection closed']);
  });
});
