// The live progress view in a real terminal (tmux, a 120x40 pty), read back with capture-pane while the work runs
// and after it ends.
//  1. The real `edgeforge build` of a generated 2,000-device fleet (fresh keys, so every stage does its real
//     work): every stage line must move at least once a second while its stage is at work — the view once sat at
//     "render 0/2000 waiting" for the whole render stage because rendering kept the event loop busy.
//  2. Failures on screen: a build cannot be made to fail devices on demand, so test/ui/simulate.ts puts 2,000
//     devices of simulated work, some failing, through the same reporter: a line per stage, the slowest few in
//     flight, failures with their reason, never a row per device.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { REPO } from '../../scripts/testkit/fixed-secrets.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';

const HAVE_TOOLS = requireTools(['tmux'], 'test/ui/terminal.test.ts');

const sessions: string[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'ef-tmux-'));
const endSessions = () => {
  if (HAVE_TOOLS) for (const x of sessions.splice(0)) spawnSync(tool('tmux'), ['kill-session', '-t', x]);
};
/** A 2,000-device build output is ~50,000 files: removed by rm in its own process, so this worker's event loop (and
 *  vitest's messages through it) is not held up for the minute a synchronous removal takes on a busy disk. */
const removeTree = (p: string) => new Promise<void>((resolve) => spawn('rm', ['-rf', p], { stdio: 'ignore' }).on('close', () => resolve()));
afterAll(async () => {
  endSessions();
  await removeTree(dir);
}, 300_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** "render  734/2000" -> [734, 2000] */
function counts(text: string, stage: string): [number, number] | undefined {
  const m = new RegExp(`^\\s*${stage}\\s+(\\d+)/(\\d+)`, 'm').exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Run `cmd` in a new tmux session (its exit status goes to `done`) and read the screen every `everyMs` until it ends. */
async function watch(name: string, cmd: string, everyMs: number, maxMs: number): Promise<{ frames: { at: number; text: string }[]; code: string; screen: () => string }> {
  const session = `ef-${name}-${process.pid}`;
  sessions.push(session);
  const done = path.join(dir, `${name}.done`);
  // CI is unset inside: the CLI shows the live view only in a terminal outside CI
  const script = path.join(dir, `${name}.sh`);
  writeFileSync(script, `cd ${JSON.stringify(REPO)}\nunset CI\n${cmd}\necho $? > ${JSON.stringify(done)}\nsleep 600\n`);
  execFileSync(tool('tmux'), ['new-session', '-d', '-s', session, '-x', '120', '-y', '40', `sh ${JSON.stringify(script)}`]);
  const screen = () => execFileSync(tool('tmux'), ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
  const frames: { at: number; text: string }[] = [];
  const until = performance.now() + maxMs;
  let code = '';
  while (performance.now() < until) {
    const text = screen();
    frames.push({ at: performance.now(), text });
    try {
      code = readFileSync(done, 'utf8').trim();
    } catch {
      /* still running */
    }
    if (code) break;
    await sleep(everyMs);
  }
  return { frames, code, screen };
}

/**
 * The longest time a stage's count stood still while the stage was at work: from when it could start (the stage
 * before it complete) until its own count is complete. Frames are read whenever the test gets the CPU, so a run
 * of equal counts is measured from its first frame to its last: the screen really showed that count that long.
 * (A frame caught mid-redraw may lack a line: it says nothing about that stage.)
 */
function longestStill(frames: { at: number; text: string }[], stage: string, after?: string): { seconds: number; count: string; at: number } {
  const complete = (text: string, s: string) => {
    const c = counts(text, s);
    return c !== undefined && c[1] > 0 && c[0] === c[1];
  };
  const t0 = frames[0].at;
  const from = after ? frames.findIndex((f) => complete(f.text, after)) : 0;
  expect(from, `${after} never complete on screen`).toBeGreaterThanOrEqual(0);
  const series = frames.slice(from).flatMap((f) => {
    const c = counts(f.text, stage);
    return c ? [{ at: f.at, count: c.join('/'), complete: c[1] > 0 && c[0] === c[1] }] : [];
  });
  const end = series.findIndex((x) => x.complete);
  expect(end, `${stage}: never complete on screen`).toBeGreaterThan(0);
  let worst = { seconds: 0, count: '', at: 0 };
  let run = 0; // first frame of the current run of equal counts
  for (let i = 1; i <= end; i++) {
    if (series[i].count === series[run].count) continue;
    const still = (series[i - 1].at - series[run].at) / 1000;
    if (still > worst.seconds) worst = { seconds: still, count: series[run].count, at: (series[run].at - t0) / 1000 };
    run = i;
  }
  return worst;
}

describe.runIf(HAVE_TOOLS)('progress at fleet scale, in a terminal (tmux)', () => {
  it('the real build of 2,000 devices: every stage line moves at least once a second while its stage works', async () => {
    const inv = path.join(dir, 'fleet.yaml');
    writeFileSync(inv, generateInventory(2000));
    const out = path.join(dir, 'out');
    const stdout = path.join(dir, 'build.stdout');
    const cmd = `SOURCE_DATE_EPOCH=1767225600 ${JSON.stringify(process.execPath)} scripts/bin/edgeforge.mjs build -i ${inv} --keys ${path.join(dir, 'keys')} -o ${out} --example-admin > ${stdout}`;
    const { frames, code, screen } = await watch('build', cmd, 150, 400_000);
    expect(code, frames.at(-1)?.text).toBe('0');
    const view = frames.filter((f) => counts(f.text, 'render'));
    expect(view.length, 'the live view was never on screen').toBeGreaterThan(20);

    // keys counts every identity it makes (2,000 devices', then their sites'); the per-device stages follow it
    for (const [stage, after] of [['keys'], ['render', 'keys'], ['images', 'keys'], ['write', 'keys']] as const) {
      const still = longestStill(view, stage, after);
      expect(still.seconds, `${stage} stood at ${still.count} for ${still.seconds.toFixed(1)} s from ${still.at.toFixed(1)} s while its stage worked`).toBeLessThan(1);
    }
    // mid-run: a line per stage with its rate and ETA, never a row per device (the build works on one device at a
    // time and the view redraws between devices, so "in flight" is mostly empty)
    const mid = view.find((f) => {
      const r = counts(f.text, 'render')!;
      return r[0] >= 200 && r[0] < 1800;
    });
    expect(mid, 'no frame caught the render stage at work').toBeDefined();
    expect(mid!.text).toMatch(/^. build synthetic-2000: 2000 devices, \S+ — \d+ ok, 0 failed(, \d in flight)?$/m);
    expect(mid!.text).toMatch(/^\s*render\s+\d+\/2000\s+\d+(\.\d)?\/s\s+ETA \S+/m);
    expect(mid!.text.split('\n').filter((l) => /\b[a-z]+-[a-z]+-\d{3}-\d{3}\b/.test(l)).length, mid!.text).toBeLessThanOrEqual(3);

    // after it ends: the final counts stay
    await sleep(300);
    const end = screen();
    expect(end).toMatch(/^. build synthetic-2000: 2000 devices, \S+ — 2000 ok, 0 failed$/m);
    for (const s of ['render', 'images', 'write']) expect(counts(end, s), s).toEqual([2000, 2000]);
    expect(counts(end, 'sign')).toEqual([1, 1]);
    expect(end).toMatch(/build: 2000 ok, 0 failed, 0 skipped; .*manifest\.json lists 2000 device\(s\)/);
    expect(readFileSync(stdout, 'utf8')).toBe(''); // the view and the summary are on stderr

    // a rebuild replaces every device's directory: the commit swaps 2,000 in and removes the 2,000 old ones (the
    // removal once ran on the main thread and the whole view, elapsed time included, stood still for seconds)
    const again = await watch('rebuild', cmd.replace(' build ', ' build --force '), 150, 400_000);
    expect(again.code, again.frames.at(-1)?.text).toBe('0');
    const committing = again.frames.filter((f) => (counts(f.text, 'commit')?.[0] ?? 0) > 0);
    // 2,000 swaps and removals of ~48,000 files take seconds here: frames every 150 ms catch them at work
    expect(committing.length, 'no frames caught the commit at work').toBeGreaterThan(2);
    const still = longestStill(committing, 'commit');
    expect(still.seconds, `commit stood at ${still.count} for ${still.seconds.toFixed(1)} s`).toBeLessThan(1);
    const elapsed = (text: string) => /^. build synthetic-2000: 2000 devices, (\S+) —/m.exec(text)?.[1];
    const signed = again.frames.findIndex((f) => counts(f.text, 'sign')?.[0] === 1);
    expect(signed, 'sign never complete on screen').toBeGreaterThanOrEqual(0);
    const afterSign = again.frames.slice(signed).filter((f) => !/^✔ build/m.test(f.text));
    for (let i = 0, run = 0; i < afterSign.length; i++) {
      if (elapsed(afterSign[i].text) !== elapsed(afterSign[run].text)) run = i;
      else expect((afterSign[i].at - afterSign[run].at) / 1000, `the elapsed time stood at ${elapsed(afterSign[run].text)}`).toBeLessThan(1.5);
    }
    expect(counts(again.screen(), 'commit')).toEqual([4000, 4000]);
    endSessions();
    await removeTree(out);
    await removeTree(path.join(dir, 'keys'));
  }, 420_000);

  it('2,000 devices of simulated work: a line per stage, the slowest few in flight, failures with their reason; no row per device', async () => {
    const stdout = path.join(dir, 'sim.stdout');
    const { frames, code, screen } = await watch('sim', `node --import tsx test/ui/simulate.ts 2000 25 > ${stdout}`, 300, 120_000);
    expect(code).toBe('0');
    const mid = frames.find((f) => {
      const r = counts(f.text, 'render');
      return r && r[0] >= 200 && r[0] < 1800;
    })!.text;
    expect(counts(mid, 'render')![1]).toBe(2000);
    expect(mid).toMatch(/^. build simulated-fleet: 2000 devices, [\d.]+s — \d+ ok, \d+ failed, \d+ in flight$/m);
    expect(counts(mid, 'keys')).toEqual([2000, 2000]);
    expect(mid).toMatch(/^\s*render\s+\d+\/2000\s+\d+\/s\s+ETA \S+/m);
    expect(mid).toMatch(/^\s*slowest in flight:$/m);
    // no row per device: only the 3 slowest in flight and at most 5 failures name a device
    const named = mid.split('\n').filter((l) => /sim-\d{4}/.test(l));
    expect(named.length, mid).toBeLessThanOrEqual(3 + 5);
    expect(mid.split('\n').filter((l) => l.trim()).length).toBeLessThanOrEqual(20);

    // after it ends: the final counts stay, every failure is listed with its reason
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
  }, 150_000);
});
