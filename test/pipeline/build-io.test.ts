// The build's own I/O: devices whose inputs are unchanged are skipped (not rendered, not decrypted,
// mtimes kept), seed images are sparse, a kill at a random moment leaves a state verify accepts in full or
// refuses with a reason and the next build converges, a full or read-only output filesystem fails the build
// with the path named and the previous build intact.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { signWith, testBuildKey } from './test-signer.ts';
import { runCli } from '../helpers.ts';
import { EXAMPLE, REPO, exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { build, type BuildOptions } from '../../scripts/pipeline/build/index.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { Manifest } from '../../scripts/manifest/types.ts';
import { INPUTS_STAMP, writeNewFile } from '../../scripts/pipeline/write.ts';
import { UserError } from '../../scripts/util/errors.ts';
const HAVE_TOOLS = requireTools(['fsck.vfat', 'mount', 'umount'], 'test/pipeline/build-io.test.ts');

const EPOCH = 1767225600;
const CLI = path.join(REPO, 'scripts/bin/edgeforge.mjs');
let tmp: string;
let fleet: Fleet;
let signingKey: openpgp.PrivateKey;

/** fixed secrets; identity digests a test can change per device; signatures checked against the test key */
function source(identity: Record<string, string> = {}, asked: string[][] = []): SecretsSource {
  return {
    async secretsFor(devices) {
      asked.push(devices.map((d) => d.id));
      return new Map(devices.map((d) => [d.id, fixedSecretsFor(d)]));
    },
    async identities(devices) {
      return new Map(devices.map((d) => [d.id, identity[d.id] ?? 'fixed-identity']));
    },
    async verifySignature(data, signature) {
      const v = await openpgp.verify({
        message: await openpgp.createMessage({ binary: data }),
        signature: await openpgp.readSignature({ armoredSignature: signature }),
        verificationKeys: signingKey.toPublic(),
        date: new Date(EPOCH * 1000 + 1000),
      });
      return v.signatures[0].verified.then(
        () => true,
        () => false,
      );
    },
    sign: signWith(() => signingKey),
    async close() {},
  };
}

function opts(out: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return { fleet, inventoryPath: EXAMPLE, outDir: out, sourceDateEpoch: EPOCH, concurrency: 4, reporter: new JsonReporter(), secrets: source(), ...extra };
}

/** path -> mtime + sha256 of every file under dir */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else
        out.set(
          r,
          `${statSync(path.join(dir, r)).mtimeMs} ${createHash('sha256')
            .update(readFileSync(path.join(dir, r)))
            .digest('hex')}`,
        );
    }
  };
  walk('');
  return out;
}

const leftovers = (out: string) => readdirSync(path.join(out, 'devices')).filter((n) => n.startsWith('.'));

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-build-io-'));
  fleet = await exampleFleet();
  signingKey = await testBuildKey(EPOCH);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('build: only what changed costs anything', () => {
  it('a rebuild with nothing changed renders and decrypts nothing, keeps every mtime, and writes a complete fresh manifest', async () => {
    const out = path.join(tmp, 'skip');
    const asked: string[][] = [];
    const first = await build(opts(out, { secrets: source({}, asked) }));
    expect(first.skipped).toBe(0);
    const m1 = readFileSync(path.join(out, 'manifest.json'), 'utf8');
    const devs = (JSON.parse(m1) as Manifest).devices;
    expect(devs.every((d) => /^[0-9a-f]{64}$/.test(d.inputs ?? ''))).toBe(true);
    for (const d of devs) expect(readFileSync(path.join(out, 'devices', d.id, INPUTS_STAMP), 'utf8').trim()).toBe(d.inputs);
    const before = snapshot(path.join(out, 'devices'));
    await new Promise((r) => setTimeout(r, 20));

    const again = await build(opts(out, { secrets: source({}, asked) }));
    expect(again.skipped).toBe(fleet.active.length);
    expect(again.results.every((r) => r.status === 'skipped')).toBe(true);
    expect(asked[1]).toEqual([]); // no device's secrets were asked for
    expect(readFileSync(path.join(out, 'manifest.json'), 'utf8')).toBe(m1);
    expect(snapshot(path.join(out, 'devices'))).toEqual(before);
    expect((await runVerify(out)).code).toBe(0);
  }, 120_000);

  it('a changed identity re-renders that device only; its unchanged files keep their inode and mtime', async () => {
    const out = path.join(tmp, 'one');
    await build(opts(out));
    const id = fleet.active[2].id;
    const before = snapshot(path.join(out, 'devices', id));
    const ino = statSync(path.join(out, 'devices', id, 'seed/meta-data')).ino;
    const asked: string[][] = [];
    const r = await build(opts(out, { secrets: source({ [id]: 'rotated' }, asked) }));
    expect(r.skipped).toBe(fleet.active.length - 1);
    expect(asked[0]).toEqual([id]);
    // same fixed secrets, so the same bytes: every file kept as it was (hard-linked into the new directory)
    const after = snapshot(path.join(out, 'devices', id));
    after.delete(INPUTS_STAMP);
    before.delete(INPUTS_STAMP);
    expect(after).toEqual(before);
    expect(statSync(path.join(out, 'devices', id, 'seed/meta-data')).ino).toBe(ino);
    expect(leftovers(out)).toEqual([]);
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.devices).toHaveLength(fleet.active.length);
  }, 120_000);

  it('an edited previous manifest (bad signature) is not trusted: everything is rendered again', async () => {
    const out = path.join(tmp, 'forged');
    await build(opts(out));
    const mp = path.join(out, 'manifest.json');
    writeFileSync(mp, readFileSync(mp, 'utf8').replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${'0'.repeat(64)}"`));
    const r = await build(opts(out));
    expect(r.skipped).toBe(0);
    expect((await runVerify(out)).code).toBe(0);
  }, 120_000);

  it('--only against a previous manifest that does not verify is refused with the reason: never a smaller signed manifest', async () => {
    const out = path.join(tmp, 'only-forged');
    await build(opts(out));
    const mp = path.join(out, 'manifest.json');
    const id = fleet.active[1].id;
    // an edited manifest (its signature no longer matches), then a missing signature
    writeFileSync(mp, readFileSync(mp, 'utf8').replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${'0'.repeat(64)}"`));
    for (const why of [/manifest\.json\.asc is not a good signature over manifest\.json by the fleet's build key/, /manifest\.json\.asc is missing \(the previous build was not signed\)/]) {
      if (why.source.includes('missing')) rmSync(mp + '.asc');
      const before = snapshot(out);
      const err = await build(opts(out, { only: [id] })).catch((e) => e);
      expect(err).toBeInstanceOf(UserError);
      expect(err.exitCode).toBe(2);
      expect(err.message).toMatch(why);
      expect(err.message).toMatch(/--only: the previous build in .* cannot vouch for the devices this build would keep: .*Build every device \(without --only\).*Nothing was written\./);
      expect(snapshot(out)).toEqual(before); // nothing written: the manifest still lists every device
      expect((JSON.parse(readFileSync(mp, 'utf8')) as Manifest).devices).toHaveLength(fleet.active.length);
    }
    // an --only naming every device drops nothing: allowed, like a full build
    expect((await build(opts(out, { only: fleet.active.map((d) => d.id) }))).manifest.devices).toHaveLength(fleet.active.length);
    // the way on: a full build signs a complete manifest again, after which --only adds to it
    await build(opts(out));
    const r = await build(opts(out, { only: [id], force: true }));
    expect(r.results.map((x) => [x.id, x.status])).toEqual([[id, 'ok']]);
    expect((JSON.parse(readFileSync(mp, 'utf8')) as Manifest).devices).toHaveLength(fleet.active.length);
    expect((await runVerify(out)).code).toBe(0);
  }, 180_000);

  it('--only against a good manifest of another inventory or epoch, or with its manifest gone, is refused: never a smaller signed manifest', async () => {
    const out = path.join(tmp, 'only-other');
    await build(opts(out));
    const mp = path.join(out, 'manifest.json');
    const id = fleet.active[1].id;
    const refused = async (o: Partial<BuildOptions>, why: RegExp) => {
      const before = snapshot(out);
      const err = await build(opts(out, { only: [id], ...o })).catch((e) => e);
      expect(err).toBeInstanceOf(UserError);
      expect(err.exitCode).toBe(2);
      expect(err.message).toMatch(why);
      expect(err.message).toMatch(/Build every device \(without --only\).*Nothing was written\./);
      expect(snapshot(out)).toEqual(before);
    };
    // the inventory changed since (a comment is enough: its hash is what the manifest vouches for)
    await refused({ fleet: { ...fleet, inventorySha256: 'f'.repeat(64) } }, /built from another inventory \(sha256 [0-9a-f]{12}…, this one ffffffffffff…\)/);
    // another SOURCE_DATE_EPOCH (outside git, without SOURCE_DATE_EPOCH, every build has its own)
    await refused({ sourceDateEpoch: EPOCH + 60 }, new RegExp(`built with SOURCE_DATE_EPOCH=${EPOCH}, this build with ${EPOCH + 60} \\(set SOURCE_DATE_EPOCH=${EPOCH} to add to it\\)`));
    // selecting every device drops nothing: allowed
    const all = await build(opts(out, { only: fleet.active.map((d) => d.id), sourceDateEpoch: EPOCH + 60 }));
    expect(all.manifest.devices).toHaveLength(fleet.active.length);
    // the manifest deleted, its signature and the devices left: not "no previous build"
    rmSync(mp);
    await refused({ sourceDateEpoch: EPOCH + 60 }, /manifest\.json is missing, but the previous build's manifest\.json\.asc and device directories are there/);
    rmSync(mp + '.asc');
    await refused({ sourceDateEpoch: EPOCH + 60 }, /manifest\.json is missing, but the previous build's device directories are there/);
    // the signature alone
    await build(opts(out));
    rmSync(mp);
    rmSync(path.join(out, 'devices'), { recursive: true });
    await refused({ sourceDateEpoch: EPOCH + 60 }, /manifest\.json is missing, but the previous build's manifest\.json\.asc is there/);
  }, 180_000);

  it('a device whose directory holds another build than the manifest says (killed after its swap) is rendered again, not skipped', async () => {
    const out = path.join(tmp, 'revert');
    await build(opts(out));
    const saved = { m: readFileSync(path.join(out, 'manifest.json')), s: readFileSync(path.join(out, 'manifest.json.asc')) };
    const id = fleet.active[0].id;
    // a build with other inputs for this device swaps its directory in, then "dies" before its manifest: put the old one back
    await build(opts(out, { secrets: source({ [id]: 'other' }) }));
    writeFileSync(path.join(out, 'manifest.json'), saved.m);
    writeFileSync(path.join(out, 'manifest.json.asc'), saved.s);
    // the inputs are back to what that manifest recorded, but the stamp says otherwise
    const r = await build(opts(out));
    expect(r.skipped).toBe(fleet.active.length - 1);
    expect(r.results.find((x) => x.id === id)!.status).toBe('ok');
  }, 120_000);

  it('--force renders every device', async () => {
    const out = path.join(tmp, 'force');
    await build(opts(out));
    expect((await build(opts(out, { force: true }))).skipped).toBe(0);
  }, 120_000);
});

describe.runIf(HAVE_TOOLS)('build: output no larger than its content', () => {
  it('seed.img is sparse: fewer blocks on disk than its size, the same bytes when read', async () => {
    const out = path.join(tmp, 'sparse');
    await build(opts(out));
    for (const d of fleet.active.slice(0, 3)) {
      const img = path.join(out, 'devices', d.id, 'seed.img');
      const st = statSync(img);
      expect(st.size).toBe(1024 * 1024);
      expect(st.blocks * 512, d.id).toBeLessThan(st.size / 4);
      execFileSync(tool('fsck.vfat'), ['-n', img]);
    }
  }, 120_000);

  it('writeNewFile writes holes only where whole blocks are zero (odd sizes, data at the very end)', async () => {
    const f = path.join(tmp, 'holes.bin');
    const b = new Uint8Array(300_001);
    b[5] = 1;
    b[150_000] = 2;
    b[300_000] = 3;
    await writeNewFile(f, b, 0o600);
    expect(Buffer.compare(readFileSync(f), Buffer.from(b))).toBe(0);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(f).blocks * 512).toBeLessThan(64 * 1024);
  });
});

// ---- the CLI with a real keystore: kills and full or read-only filesystems ----

async function runVerify(out: string, keys?: string) {
  return keys ? runCli(['verify', out, '--keys', keys]) : runCli(['verify', out, '--fingerprint', signingKey.getFingerprint()]);
}

function cliBuild(keys: string, out: string, epoch: number) {
  return runCli(['build', '--keys', keys, '-o', out], { env: { SOURCE_DATE_EPOCH: String(epoch) } });
}

/** a deterministic PRNG, so a failing seed can be run again */
function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.runIf(HAVE_TOOLS)('build: killed at random moments (SIGKILL of the CLI)', () => {
  it('leaves a state verify accepts in full or refuses with a reason, and the next build converges', async () => {
    const keys = path.join(tmp, 'kill-keys');
    const out = path.join(tmp, 'kill-out');
    expect((await cliBuild(keys, out, EPOCH)).code).toBe(0); // creates the example keys
    // how long a whole build takes as a child process (every device re-rendered: another epoch)
    const timed = async (epoch: number, killAfter?: number) => {
      const t0 = Date.now();
      const child = spawn(process.execPath, [CLI, 'build', '--keys', keys, '-o', out], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) }, stdio: 'ignore' });
      const timer = killAfter !== undefined ? setTimeout(() => child.kill('SIGKILL'), killAfter) : undefined;
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
      clearTimeout(timer);
      return { ms: Date.now() - t0, code, signal };
    };
    const full = await timed(EPOCH + 1);
    expect(full.code).toBe(0);
    const outcomes: string[] = [];
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const rnd = mulberry32(seed);
      const before = readFileSync(path.join(out, 'manifest.json'), 'utf8');
      const epoch = EPOCH + 10 + seed; // another epoch: every device is rendered and swapped
      const delay = Math.round(full.ms * (0.3 + 0.75 * rnd()));
      const k = await timed(epoch, delay);
      const v = await runVerify(out, keys);
      const m = existsSync(path.join(out, 'manifest.json')) ? readFileSync(path.join(out, 'manifest.json'), 'utf8') : '';
      if (v.code === 0) {
        // accepted in full: the previous build, or the new one complete
        expect([before, m].includes(m)).toBe(true);
        expect(JSON.parse(m).sourceDateEpoch === epoch || m === before, `seed ${seed}`).toBe(true);
        outcomes.push(`seed ${seed}: killed after ${delay} ms (${k.signal ?? `exit ${k.code}`}): accepted (${m === before ? 'previous build' : 'new build'})`);
      } else {
        expect(v.code, `seed ${seed}: ${v.stdout}${v.stderr}`).toBe(1);
        expect(v.stdout).toMatch(/verified: FAILED|signature: BAD/);
        expect(v.stdout).toMatch(/problem: .+: (missing|sha256 .* does not match|size \d+ bytes|.*signature|.*no signature)/);
        outcomes.push(
          `seed ${seed}: killed after ${delay} ms: refused (${v.stdout
            .split('\n')
            .find((l) => l.includes('problem:'))
            ?.trim()})`,
        );
      }
      const next = await cliBuild(keys, out, epoch);
      expect(next.code, next.stderr).toBe(0);
      expect((await runVerify(out, keys)).code).toBe(0);
      expect(leftovers(out)).toEqual([]);
    }
    console.log(outcomes.join('\n'));
  }, 600_000);
});

describe.runIf(HAVE_TOOLS)('build: killed at each step of the commit (injected kill points)', () => {
  it('each leaves the previous build or a state verify refuses with the reason; the next build converges', async () => {
    const keys = path.join(tmp, 'point-keys');
    const out = path.join(tmp, 'point-out');
    expect((await cliBuild(keys, out, EPOCH)).code).toBe(0);
    const expected: Record<string, RegExp | 'previous'> = {
      staged: 'previous', // staged directories only: the previous build stands
      'half-swapped': /problem: .+: sha256 .* does not match the manifest/,
      swapped: /problem: .+: sha256 .* does not match the manifest/,
      'signature-renamed': /signature: BAD/,
    };
    for (const [i, [point, want]] of Object.entries(expected).entries()) {
      const before = readFileSync(path.join(out, 'manifest.json'), 'utf8');
      const epoch = EPOCH + 50 + i;
      const child = spawn(process.execPath, [CLI, 'build', '--keys', keys, '-o', out], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch), EDGEFORGE_TEST_KILL_AT: point }, stdio: 'ignore' });
      const signal = await new Promise((r) => child.on('exit', (_c, s) => r(s)));
      expect(signal, point).toBe('SIGKILL');
      const v = await runVerify(out, keys);
      if (want === 'previous') {
        expect(v.code, point).toBe(0);
        expect(readFileSync(path.join(out, 'manifest.json'), 'utf8')).toBe(before);
      } else {
        expect(v.code, `${point}: ${v.stdout}`).toBe(1);
        expect(v.stdout, point).toMatch(want);
      }
      const next = await cliBuild(keys, out, epoch);
      expect(next.code, next.stderr).toBe(0);
      expect((await runVerify(out, keys)).code, point).toBe(0);
      expect(leftovers(out)).toEqual([]);
    }
  }, 300_000);
});

const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const d = mkdtempSync(path.join(tmpdir(), 'ef-mnt-probe-'));
  try {
    execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d], { stdio: 'ignore' });
    execFileSync(tool('umount'), [d]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
})();
if (!canMount) console.warn('SKIPPED: the full and read-only filesystem tests need root and `mount -t tmpfs` (not available here)');

describe.skipIf(!canMount || !HAVE_TOOLS)('build: full or read-only output filesystem (a small tmpfs)', () => {
  let mnt: string;
  let keys: string;
  beforeAll(() => {
    mnt = path.join(tmp, 'mnt');
    keys = path.join(tmp, 'fs-keys');
    mkdirSync(mnt);
    execFileSync(tool('mount'), ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
  });
  afterAll(() => {
    try {
      execFileSync(tool('umount'), [mnt]);
    } catch {
      /* already */
    }
  });

  it('a full disk fails the build naming the path; the previous output verifies; after space is freed the build converges', async () => {
    const out = path.join(mnt, 'out');
    expect((await cliBuild(keys, out, EPOCH)).code).toBe(0);
    const before = snapshot(out);
    // fill the filesystem, leaving less than one device's files
    const filler = path.join(mnt, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC: full */
    }
    const r = await cliBuild(keys, out, EPOCH + 100); // another epoch: every device must be written again
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot write the build output in ${out} \\(${out}/devices/\\.edgeforge-new-[0-9a-f]{8}-[a-z0-9-]+/[^)]+\\): ENOSPC`));
    expect(r.stderr).toContain('The previous output and manifest');
    expect(snapshot(out)).toEqual(before);
    expect(leftovers(out)).toEqual([]);
    expect((await runVerify(out, keys)).code).toBe(0);

    rmSync(filler);
    expect((await cliBuild(keys, out, EPOCH + 100)).code).toBe(0);
    expect((await runVerify(out, keys)).code).toBe(0);
  }, 300_000);

  it('a read-only output filesystem fails the build naming the path; the previous output verifies', async () => {
    const out = path.join(mnt, 'out');
    if (!existsSync(path.join(out, 'manifest.json'))) expect((await cliBuild(keys, out, EPOCH)).code).toBe(0);
    const before = snapshot(out);
    execFileSync(tool('mount'), ['-o', 'remount,ro', mnt]);
    try {
      const r = await cliBuild(keys, out, EPOCH + 200);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot write the build output in ${out} \\(${out}/devices/[^)]+\\): EROFS`));
      expect(snapshot(out)).toEqual(before);
      expect((await runVerify(out, keys)).code).toBe(0);
    } finally {
      execFileSync(tool('mount'), ['-o', 'remount,rw', mnt]);
    }
  }, 300_000);
});
