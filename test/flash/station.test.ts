// Station mode through the real CLI: slots filled batch after batch in inventory order, the job log as
// the record of which device went to which card, and a crash mid-batch resumed on the next run.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../scripts/cli/main.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { buildOut, cleanupTmp, sha, tmp, type BuiltOut } from './fixture.ts';
const HAVE_TOOLS = requireTools(['mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/flash/station.test.ts');

afterAll(cleanupTmp);

let dir: string;
let inv: string;
let ids: string[];
let out: BuiltOut;

function io() {
  const o = { stdout: '', stderr: '' };
  return {
    o,
    io: { out: (t: string) => void (o.stdout += t + '\n'), err: (t: string) => void (o.stderr += t + '\n'), isTTY: false, env: process.env, cwd: dir },
  };
}

beforeAll(async () => {
  dir = tmp('station');
  inv = path.join(dir, 'fleet.yaml');
  writeFileSync(inv, generateInventory(5, { name: 'station-test' }));
  const fleet = await loadInventoryFile(inv, inv);
  ids = fleet.active.map((d) => d.id);
  expect(ids.length).toBe(5);
  out = await buildOut('station-out', ids);
  writeFileSync(path.join(dir, 'station.yaml'), `# two USB ports of the hub\nslots:\n  left: ${path.join(dir, 'left.img')}\n  right: ${path.join(dir, 'right.img')}\n`);
});

describe.runIf(HAVE_TOOLS)('flash --station', () => {
  it('fills the slots with the next unflashed devices, batch after batch, and resumes after a crash', async () => {
    // the fixture build is unsigned (no keys): the signed path is tested with a real build in build-output.test.ts
    const args = ['flash', '--station', 'station.yaml', '-i', inv, '-o', out.outDir, '--verify', '--allow-unsigned'];
    // batch 1
    let c = io();
    expect(await main([...args, '--json'], c.io)).toBe(0);
    expect(c.o.stderr).toMatch(/--allow-unsigned: the build output is NOT checked/);
    let doc = JSON.parse(c.o.stdout);
    expect(doc.devices.map((d: { id: string }) => d.id)).toEqual(ids.slice(0, 2));
    expect(doc.devices.every((d: { status: string; phase: string }) => d.status === 'ok' && d.phase === 'verify')).toBe(true);
    expect(doc).toMatchObject({ batch: 1, flashed: 2, remaining: ids.slice(2) });
    expect(sha(readFileSync(path.join(dir, 'left.img')))).toBe(sha(await out.materialized(ids[0])));
    expect(sha(readFileSync(path.join(dir, 'right.img')))).toBe(sha(await out.materialized(ids[1])));

    // a crash in the middle of the next batch: the log has the start of ids[2] and nothing after
    const log = path.join(out.outDir, 'flash/jobs.jsonl');
    appendFileSync(log, JSON.stringify({ event: 'start', batch: 2, device: ids[2], slot: 'left', target: path.join(dir, 'left.img'), at: new Date().toISOString() }) + '\n' + '{"event":"res');
    c = io();
    expect(await main(args, c.io)).toBe(0);
    expect(c.o.stderr).toMatch(new RegExp(`resuming: ${ids[2]} was being written to .*left\\.img \\(slot left\\) in batch 2`));
    expect(c.o.stderr).toContain(`slot left (${path.join(dir, 'left.img')}) <- ${ids[2]}`);
    expect(c.o.stdout).toMatch(/flash: 2 ok, 0 failed/);
    expect(c.o.stdout).toContain(`station: batch 3: 4/5 device(s) flashed, next: ${ids[4]}`);
    copyFileSync(path.join(dir, 'left.img'), path.join(dir, 'keep-2.img'));
    expect(sha(readFileSync(path.join(dir, 'keep-2.img')))).toBe(sha(await out.materialized(ids[2])));

    // the last device: one slot used
    c = io();
    expect(await main([...args, '--json'], c.io)).toBe(0);
    doc = JSON.parse(c.o.stdout);
    expect(doc.devices.map((d: { id: string }) => d.id)).toEqual([ids[4]]);
    expect(doc.remaining).toEqual([]);

    // nothing left; the inventory was never written
    c = io();
    expect(await main(args, c.io)).toBe(0);
    expect(c.o.stdout).toMatch(/all 5 device\(s\) are flashed/);
    const state = JSON.parse(readFileSync(path.join(out.outDir, 'flash/state.json'), 'utf8'));
    expect(Object.keys(state.flashed).sort()).toEqual([...ids].sort());
    expect(state.flashed[ids[2]]).toMatchObject({ slot: 'left', batch: 3 });
    const events = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{"event":"result"'))
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.device)).toEqual([ids[0], ids[1], ids[2], ids[3], ids[4]]);
  });

  it('pairs --device with --target and reports per device in --json; bad usage exits 2', async () => {
    let c = io();
    expect(await main(['flash', '--allow-unsigned', '-o', out.outDir, '--device', ids[0], '--target', 'a.img', '--device', ids[1]], c.io)).toBe(2);
    expect(c.o.stderr).toMatch(/2 --device but 1 --target/);
    c = io();
    expect(await main(['flash', '--allow-unsigned', '-o', out.outDir, '--device', ids[0], '--target', 'a.img', '--device', ids[1], '--target', 'b.img', '--json'], c.io)).toBe(0);
    const doc = JSON.parse(c.o.stdout);
    expect(doc.devices).toHaveLength(2);
    for (const d of doc.devices) expect(Object.keys(d).sort()).toEqual(['id', 'message', 'phase', 'status']);
    expect(sha(readFileSync(path.join(dir, 'b.img')))).toBe(sha(await out.materialized(ids[1])));
    c = io();
    // the only card refused before anything was written to it: nothing could be tried (exit 2), its reason in --json
    expect(await main(['flash', '--allow-unsigned', '-o', out.outDir, '--device', ids[0], '--target', path.join(dir, 'nodir/x.img'), '--json'], c.io)).toBe(2);
    expect(JSON.parse(c.o.stdout).devices[0]).toMatchObject({ status: 'failed', phase: 'preflight' });
  });
});

describe.runIf(HAVE_TOOLS)('station file and batches', () => {
  it('reads slots as a mapping, a list or a bare mapping, and rejects a target in two slots', async () => {
    const { parseStation } = await import('../../scripts/flash/station.ts');
    expect(parseStation('slots:\n  A1: /dev/sdb\n  A2: /dev/sdc\n', 's.yaml')).toEqual([
      { slot: 'A1', target: '/dev/sdb' },
      { slot: 'A2', target: '/dev/sdc' },
    ]);
    expect(parseStation('{"slots":[{"slot":1,"target":"/dev/sdb"}]}', 's.json')).toEqual([{ slot: '1', target: '/dev/sdb' }]);
    expect(parseStation('A1: /dev/sdb\n', 's.yaml')).toEqual([{ slot: 'A1', target: '/dev/sdb' }]);
    expect(() => parseStation('slots:\n  A1: /dev/sdb\n  A2: /dev/sdb\n', 's.yaml')).toThrow(/s.yaml: target \/dev\/sdb appears in two slots/);
    expect(() => parseStation('slots: [1, 2]\n', 's.yaml')).toThrow(/s.yaml: expected "slots:"/);
  });

  it('fills slots in order with unflashed devices; a failed re-flash un-marks a device', async () => {
    const { JobLog, nextBatch } = await import('../../scripts/flash/station.ts');
    const log = new JobLog(tmp('log'));
    await log.append([
      { event: 'start', batch: 1, device: 'd1', target: '/dev/sdb' },
      { event: 'result', batch: 1, device: 'd1', target: '/dev/sdb', status: 'ok' },
      { event: 'start', batch: 1, device: 'd2', target: '/dev/sdc' },
      { event: 'result', batch: 1, device: 'd2', target: '/dev/sdc', status: 'ok' },
      { event: 'start', batch: 2, device: 'd2', target: '/dev/sdb' },
      { event: 'result', batch: 2, device: 'd2', target: '/dev/sdb', status: 'failed', message: 'EIO' },
    ]);
    const st = await log.read();
    expect([...st.flashed.keys()]).toEqual(['d1']);
    expect([...st.failed.keys()]).toEqual(['d2']);
    const slots = [
      { slot: 'A', target: '/dev/sdb' },
      { slot: 'B', target: '/dev/sdc' },
    ];
    expect(nextBatch(slots, ['d1', 'd2', 'd3', 'd4'], st)).toEqual([
      { slot: 'A', target: '/dev/sdb', device: 'd2' },
      { slot: 'B', target: '/dev/sdc', device: 'd3' },
    ]);
    expect(nextBatch(slots, ['d1', 'd4'], st)).toEqual([{ slot: 'A', target: '/dev/sdb', device: 'd4' }]);
  });
});
