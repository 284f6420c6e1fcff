// The build output layout (OUT/base/base.json + OUT/devices/<id>/disk.delta) and the CLI command over it.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageMaterialize } from '../../scripts/cli/commands/image.ts';
import { decodeDelta, encodeDelta } from '../../scripts/disk/delta.ts';
import { deviceDeltaPath, materializeDevice, writeBaseRecord } from '../../scripts/disk/output.ts';
import { personalize } from '../../scripts/disk/personalize.ts';
import { buildRaspiFixture, deviceSeed, sha256 } from './fixtures.ts';
import { cleanup, fsckFat, mcopyOut, tmpDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['bmaptool', 'fsck.vfat', 'mcopy', 'mdir', 'mke2fs', 'mkfs.vfat', 'sfdisk'], 'test/disk/materialize-device.test.ts');

afterAll(cleanup);

const EPOCH = 1767225600;

describe.runIf(HAVE_TOOLS)('materializeDevice and `image materialize`', () => {
  it('materializes a device from the build output and the command reports it', async () => {
    const dir = tmpDir('out');
    const fx = buildRaspiFixture(path.join(dir, 'base'));
    const out = path.join(dir, 'out');
    const ids = ['site1-dev-001', 'site1-dev-002'];
    for (const id of ids) {
      const r = await personalize({ basePath: fx.path, baseSha256: fx.sha256, profile: 'raspi-mbr', files: deviceSeed(id), epoch: EPOCH });
      await writeBaseRecord(out, r.base, 'raspi-mbr');
      mkdirSync(path.dirname(path.join(out, deviceDeltaPath(id))), { recursive: true });
      writeFileSync(path.join(out, deviceDeltaPath(id)), r.delta, { mode: 0o600 });
    }
    const to = path.join(dir, 'dev2.img');
    const r = await materializeDevice({ outDir: out, deviceId: ids[1], to });
    expect(r.bmapPath).toBe(path.join(dir, 'dev2.bmap'));
    fsckFat(to, fx.fatOffset, fx.fatSize, dir);
    expect(mcopyOut(to, fx.fatOffset, 'meta-data', dir).toString()).toContain(`instance-id: ${ids[1]}`);
    execFileSync(tool('bmaptool'), ['copy', to, path.join(dir, 'copy.img')], { stdio: 'pipe' }); // finds dev2.bmap by itself

    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: () => {}, isTTY: false, env: {}, cwd: dir };
    const code = await imageMaterialize.run!({ common: { inventory: '', out, keys: '', json: true }, options: { device: ids[0], to: 'dev1.img' }, positionals: [], io });
    expect(code).toBe(0);
    const doc = JSON.parse(lines[0]);
    expect(doc).toMatchObject({ device: ids[0], image: path.join(dir, 'dev1.img'), bmap: path.join(dir, 'dev1.bmap') });
    expect(mcopyOut(doc.image, fx.fatOffset, 'meta-data', dir).toString()).toContain(`instance-id: ${ids[0]}`);

    await expect(materializeDevice({ outDir: out, deviceId: 'nope', to: path.join(dir, 'x.img') })).rejects.toThrow(/device nope: no disk delta/);
    // a base swapped behind the build's back is caught
    writeFileSync(fx.path, Buffer.concat([readFileSync(fx.path).subarray(0, 1000), Buffer.from('tampered'), readFileSync(fx.path).subarray(1008)]));
    utimesSync(fx.path, new Date(), new Date());
    await expect(materializeDevice({ outDir: out, deviceId: ids[0], to: path.join(dir, 'y.img') })).rejects.toThrow(/changed since the build/);
  });
});

describe.runIf(HAVE_TOOLS)('delta format', () => {
  it('round-trips, and rejects corruption and unknown versions', () => {
    const d = {
      blockSize: 4096,
      baseSize: 1 << 20,
      baseSha256: 'ab'.repeat(32),
      extents: [
        { offset: 4096, length: 8192 },
        { offset: 65536, length: 4096 },
      ],
      data: [Buffer.alloc(8192, 1), Buffer.alloc(4096, 2)],
    };
    const bytes = encodeDelta(d);
    expect(bytes.subarray(0, 8).toString()).toBe('EFDELTA\0');
    const back = decodeDelta(bytes);
    expect(back.extents).toEqual(d.extents);
    expect(Buffer.from(back.data[1])).toEqual(d.data[1]);
    expect(sha256(encodeDelta(back))).toBe(sha256(bytes));
    const bad = Buffer.from(bytes);
    bad[100] ^= 1;
    expect(() => decodeDelta(bad)).toThrow(/corrupt/);
    const v2 = Buffer.from(bytes);
    v2.writeUInt32LE(2, 8);
    expect(() => decodeDelta(v2)).toThrow(/version 2/);
    expect(() => encodeDelta({ ...d, extents: [...d.extents].reverse(), data: [...d.data].reverse() })).toThrow(/out of order/);
  });
});
