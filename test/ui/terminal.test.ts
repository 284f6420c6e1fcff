// The live progress view in a real terminal: test/ui/simulate.ts puts 2,000 devices of simulated work through
// the reporter inside tmux (a 120x40 pty), and the screen is read back with capture-pane while it runs and
// after it ends. What must show: the aggregate line per stage with plausible counts, never a row per device.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';

const HAVE_TOOLS = requireTools(['tmux'], 'test/ui/terminal.test.ts');

const session = `ef-progress-${process.pid}`;
const dir = mkdtempSync(path.join(tmpdir(), 'ef-tmux-'));
afterAll(() => {
  if (HAVE_TOOLS) spawnSync(tool('tmux'), ['kill-session', '-t', session]);
  rmSync(dir, { recursive: true, force: true });
});

const screen = () => execFileSync(tool('tmux'), ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** "render  734/2000" -> [734, 2000] */
function counts(text: string, stage: string): [number, number] | undefined {
  const m = new RegExp(`^\\s*${stage}\\s+(\\d+)/(\\d+)`, 'm').exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

describe.runIf(HAVE_TOOLS)('progress at fleet scale, in a terminal (tmux)', () => {
  it('2,000 devices: a line per stage, the slowest few in flight, failures with their reason; no row per device', async () => {
    const stdout = path.join(dir, 'stdout');
    const done = path.join(dir, 'done');
    const cmd = `node --import tsx test/ui/simulate.ts 2000 25 > ${stdout}; echo $? > ${done}; sleep 600`;
    execFileSync(tool('tmux'), ['new-session', '-d', '-s', session, '-x', '120', '-y', '40', '-c', process.cwd(), cmd]);

    // while it runs
    let mid = '';
    for (let i = 0; i < 100; i++) {
      await sleep(300);
      mid = screen();
      const r = counts(mid, 'render');
      if (r && r[0] >= 200 && r[0] < 1800) break;
    }
    const render = counts(mid, 'render');
    expect(render, mid).toBeDefined();
    expect(render![1]).toBeLessThanOrEqual(2000);
    expect(render![0]).toBeGreaterThan(0);
    expect(render![0]).toBeLessThan(2000);
    expect(mid).toMatch(/^. build simulated-fleet: 2000 devices, [\d.]+s — \d+ ok, \d+ failed, \d+ in flight$/m);
    expect(counts(mid, 'keys')).toEqual([2000, 2000]);
    expect(mid).toMatch(/^\s*render\s+\d+\/2000\s+\d+\/s\s+ETA \S+/m);
    expect(mid).toMatch(/^\s*slowest in flight:$/m);
    // no row per device: only the 3 slowest in flight and at most 5 failures name a device
    const named = mid.split('\n').filter((l) => /sim-\d{4}/.test(l));
    expect(named.length, mid).toBeLessThanOrEqual(3 + 5);
    expect(mid.split('\n').filter((l) => l.trim()).length).toBeLessThanOrEqual(20);

    // after it ends: the final counts stay, every failure is listed with its reason
    for (let i = 0; i < 200; i++) {
      try {
        if (readFileSync(done, 'utf8').trim()) break;
      } catch {
        /* not yet */
      }
      await sleep(300);
    }
    expect(readFileSync(done, 'utf8').trim()).toBe('0');
    await sleep(300);
    const end = screen();
    expect(end).toMatch(/^. build simulated-fleet: 2000 devices, [\d.]+s — 1992 ok, 8 failed$/m);
    expect(counts(end, 'render')).toEqual([2000, 2000]);
    expect(end).toMatch(/^\s*images\s+1992\/2000\s+\S+\s+8 failed$/m);
    expect(counts(end, 'write')).toEqual([1992, 1992]);
    expect(counts(end, 'sign')).toEqual([1, 1]);
    expect(end).toContain('failed:\n  sim-0250 failed in seed-image: simulated: no space left on device (sim-0250)');
    expect(end).toContain('simulated build: 1992 ok, 8 failed');
    expect(readFileSync(stdout, 'utf8')).toBe(''); // the view is on stderr
  }, 120_000);
});
