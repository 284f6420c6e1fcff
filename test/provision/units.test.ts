// The pure parts of provision: bundle definition and hash, host-key decisions, retry policy, jump-host specs.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { applyControl, UPLOAD_VERIFIED } from '../../scripts/provision/phase/apply.ts';
import { inMemory, SMALL_BUDGET, SMALL_FILE } from '../../scripts/provision/phase/upload.ts';
import type { BundleFile } from '../../scripts/provision/bundle.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deviceBundle, BundleError, type BundleSource } from '../../scripts/provision/bundle.ts';
import { bundleHash, bundleSums } from '../../scripts/manifest/sums.ts';
import { decide, fingerprint, hostKeyMessage, parseKeyLine } from '../../scripts/provision/hostkeys.ts';
import { backoffDelay } from '../../scripts/provision/engine.ts';
import { describe as describeError, isTransient, PhaseError } from '../../scripts/provision/errors.ts';
import { describeFirstboot, firstbootStateFromFacts, parseFirstbootState } from '../../scripts/provision/firstboot-state.ts';
import { parseJumpHost } from '../../scripts/provision/gateway.ts';
import { generateSshKeyPair } from '../../scripts/keys/ssh.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';

const h = (s: string) => sha256Hex(s);
const art = (id: string, rel: string, kind = 'other', secret = false) => ({ kind, path: `devices/${id}/${rel}`, sha256: h(rel), bytes: rel.length, secret });

describe('device bundle', () => {
  it('is the bundle/ directory when the build has one; seed files and images stay out', () => {
    const d: BundleSource = {
      id: 'a-1',
      artifacts: [
        art('a-1', 'seed/user-data', 'user-data', true),
        art('a-1', 'seed.img', 'seed-image'),
        art('a-1', 'bundle/firstboot.sh', 'firstboot'),
        art('a-1', 'bundle/secrets/k3s-token', 'other', true),
        art('a-1', 'bundle/k3s/config.yaml', 'k3s-config'),
      ],
    };
    const b = deviceBundle(d);
    expect(b.files.map((f) => f.rel)).toEqual(['firstboot.sh', 'k3s/config.yaml', 'secrets/k3s-token']);
    expect(b.files.find((f) => f.secret)?.mode).toBe(0o600);
    expect(b.firstboot).toBe('firstboot.sh');
    expect(b.sums).toBe(`${h('bundle/firstboot.sh')}  firstboot.sh\n${h('bundle/k3s/config.yaml')}  k3s/config.yaml\n${h('bundle/secrets/k3s-token')}  secrets/k3s-token\n`);
    expect(b.hash).toBe(sha256Hex(b.sums));
    expect(bundleHash(b.files)).toBe(b.hash);
  });

  it('without a bundle/ directory: every artifact but seed-image, disk-delta and bmap', () => {
    const d: BundleSource = {
      id: 'b',
      artifacts: [art('b', 'fb.sh', 'firstboot'), art('b', 'seed.img', 'seed-image'), art('b', 'disk.delta', 'disk-delta'), art('b', 'disk.bmap', 'bmap'), art('b', 'seed/meta-data', 'meta-data')],
    };
    expect(deviceBundle(d).files.map((f) => f.rel)).toEqual(['fb.sh', 'seed/meta-data']);
  });

  it("checks the build's own SHA256SUMS against the listed files", () => {
    const files = [art('c', 'bundle/firstboot.sh', 'firstboot')];
    const sums = bundleSums([{ rel: 'firstboot.sh', sha256: files[0].sha256 }]);
    const good = { kind: 'other', path: 'devices/c/bundle/SHA256SUMS', sha256: sha256Hex(sums), bytes: sums.length, secret: false };
    expect(deviceBundle({ id: 'c', artifacts: [...files, good] }).hash).toBe(good.sha256);
    expect(() => deviceBundle({ id: 'c', artifacts: [...files, { ...good, sha256: h('x') }] })).toThrow(/does not list exactly/);
  });

  it('refuses paths that could escape, and builds without exactly one first-boot program', () => {
    expect(() => deviceBundle({ id: 'd', artifacts: [art('d', 'bundle/../x', 'firstboot')] })).toThrow(BundleError);
    expect(() => deviceBundle({ id: 'd', artifacts: [{ ...art('d', 'x', 'firstboot'), path: 'devices/other/x' }] })).toThrow(/not under devices\/d\//);
    expect(() => deviceBundle({ id: 'd', artifacts: [art('d', 'bundle/a.sh', 'other')] })).toThrow(/0 first-boot programs/);
  });

  it('the hash is what `sha256sum SHA256SUMS` gives on a device (real sha256sum)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-sums-'));
    mkdirSync(path.join(dir, 'k3s'));
    writeFileSync(path.join(dir, 'firstboot.sh'), 'echo hi\n');
    writeFileSync(path.join(dir, 'k3s/config.yaml'), 'a: 1\n');
    const files = [
      { rel: 'k3s/config.yaml', sha256: h('a: 1\n') },
      { rel: 'firstboot.sh', sha256: h('echo hi\n') },
    ];
    writeFileSync(path.join(dir, 'SHA256SUMS'), bundleSums(files));
    execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir });
    expect(execFileSync('sha256sum', ['SHA256SUMS'], { cwd: dir }).toString().split(' ')[0]).toBe(bundleHash(files));
  });
});

describe('host keys', () => {
  const a = generateSshKeyPair('a');
  const b = generateSshKeyPair('b');
  const blobOf = (line: string) => Buffer.from(line.split(' ')[1], 'base64');
  it('accepts a pinned key, refuses another naming both fingerprints, and calls an unpinned one unknown', () => {
    const pin = parseKeyLine(`[10.0.0.5]:2222 ${a.publicKey}`, 'keys/known_hosts/x:1')!;
    expect(pin.type).toBe('ssh-ed25519');
    expect(decide(blobOf(a.publicKey), [pin]).kind).toBe('pinned');
    const m = decide(blobOf(b.publicKey), [pin]);
    expect(m.kind).toBe('mismatch');
    const msg = hostKeyMessage(m as Exclude<typeof m, { kind: 'pinned' }>, 'dev (10.0.0.5:2222)', 'ssh-ed25519', 'keys/known_hosts/dev');
    expect(msg).toContain(b.fingerprint);
    expect(msg).toContain(a.fingerprint);
    expect(fingerprint(blobOf(a.publicKey))).toBe(a.fingerprint);
    const u = decide(blobOf(b.publicKey), []);
    expect(u.kind).toBe('unknown');
    expect(hostKeyMessage(u as Exclude<typeof u, { kind: 'pinned' }>, 'dev', 'ssh-ed25519', 'keys/known_hosts/dev')).toMatch(/--trust-new-host-keys/);
  });
  it('ignores comments and lines that are not keys', () => {
    expect(parseKeyLine('# ssh-ed25519 AAAA', 'f')).toBeUndefined();
    expect(parseKeyLine('host ssh-ed25519 bm90IGEga2V5IGJsb2IgYXQgYWxs', 'f')).toBeUndefined();
  });
});

describe('retry policy', () => {
  it('backs off exponentially with jitter, capped', () => {
    expect(backoffDelay(1, 1000, 30_000, () => 0)).toBe(500);
    expect(backoffDelay(1, 1000, 30_000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 30_000, () => 1)).toBe(4000);
    expect(backoffDelay(10, 1000, 30_000, () => 1)).toBe(30_000);
    const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(2, 1000)));
    expect(spread.size).toBeGreaterThan(1);
    for (const d of spread) expect(d >= 1000 && d <= 2000).toBe(true);
  });
  it('retries network trouble only', () => {
    expect(isTransient(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' }))).toBe(false);
    expect(isTransient(new PhaseError('connect', 'HOST KEY MISMATCH', false))).toBe(false);
    // an sshd without SFTP: a reconnect meets the same sshd, and the message says what to add
    const noSftp = new Error('Unable to start subsystem: sftp');
    expect(isTransient(noSftp)).toBe(false);
    expect(describeError(noSftp)).toMatch(/no SFTP subsystem .*Subsystem sftp internal-sftp/);
    expect(isTransient(Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' }))).toBe(false);
  });
});

describe('jump hosts', () => {
  it('parses user@host[:port]', () => {
    expect(parseJumpHost('ops@gw.site.example:2222')).toEqual({ user: 'ops', host: 'gw.site.example', port: 2222 });
    expect(parseJumpHost('10.1.0.1')).toEqual({ user: undefined, host: '10.1.0.1', port: 22 });
    expect(parseJumpHost('[fd00::1]:22')).toEqual({ user: undefined, host: 'fd00::1', port: 22 });
    expect(() => parseJumpHost('a b')).toThrow(/user@host/);
  });
});

describe('the device shell after preflight (applyControl)', () => {
  // run the very text provision sends, in dash, with a sandboxed device root
  const setup = () => {
    const root = mkdtempSync(path.join(tmpdir(), 'ef-control-'));
    const staging = path.join(root, 'var/tmp/edgeforge-bundle-x');
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    const fb = '#!/bin/sh\necho "ran with bundle $EDGEFORGE_BUNDLE" >"$EDGEFORGE_ROOT/ran"\n';
    writeFileSync(path.join(staging, 'firstboot.sh'), fb);
    writeFileSync(path.join(staging, 'SHA256SUMS'), `${sha256Hex(fb)}  firstboot.sh\n`);
    return { root, staging };
  };
  const sh = (root: string, input: string) => {
    try {
      return {
        code: 0,
        out: execFileSync('dash', ['-c', applyControl('firstboot.sh')], { input, env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root }, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }),
      };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { code: e.status, out: e.stdout + e.stderr };
    }
  };

  it('applies on "apply root STAGING": checks the sums, moves the bundle into place, runs the program', () => {
    const { root, staging } = setup();
    const r = sh(root, `apply root ${staging}\n`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(UPLOAD_VERIFIED);
    expect(readFileSync(path.join(root, 'ran'), 'utf8')).toBe(`ran with bundle ${root}/var/lib/edgeforge/bundle\n`);
    expect(existsSync(staging)).toBe(false);
  });

  it('does nothing on "stop" or end of input (skipped device, dry run, lost connection)', () => {
    for (const input of ['stop\n', '']) {
      const { root, staging } = setup();
      const r = sh(root, input);
      expect(r.code).toBe(0);
      expect(existsSync(path.join(root, 'ran'))).toBe(false);
      expect(existsSync(staging)).toBe(true);
    }
  });

  it('refuses a damaged upload with the upload exit code, before anything moves', () => {
    const { root, staging } = setup();
    writeFileSync(path.join(staging, 'firstboot.sh'), 'echo tampered\n');
    const r = sh(root, `apply root ${staging}\n`);
    expect(r.code).toBe(86);
    expect(r.out).not.toContain(UPLOAD_VERIFIED);
    expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle'))).toBe(false);
  });
});

describe('which bundle files go up from memory (inMemory)', () => {
  const file = (rel: string, bytes: number): BundleFile => ({ kind: 'other', source: rel, rel, sha256: h(rel), bytes, secret: false, mode: 0o644 });
  it('takes every file of a usual bundle', () => {
    const files = Array.from({ length: 25 }, (_, i) => file(`f${i}`, 3000 + i));
    expect(inMemory(files).size).toBe(25);
  });
  it('streams files over SMALL_FILE and what exceeds the per-device budget, keeping the smallest in memory', () => {
    const big = file('images/k3s-airgap.tar.zst', SMALL_FILE + 1);
    const mids = Array.from({ length: 6 }, (_, i) => file(`m${i}`, SMALL_FILE - i));
    const tiny = file('config/k3s.yaml', 100);
    const got = inMemory([big, ...mids, tiny]);
    expect(got.has(big)).toBe(false);
    expect(got.has(tiny)).toBe(true);
    const bytes = [...got].reduce((n, f) => n + f.bytes, 0);
    expect(bytes).toBeLessThanOrEqual(SMALL_BUDGET);
    expect(got.size).toBe(1 + Math.floor((SMALL_BUDGET - 100) / SMALL_FILE));
    // the smallest of the middle-sized ones are the ones kept
    expect(got.has(mids[5])).toBe(true);
    expect(got.has(mids[0])).toBe(false);
  });
});

describe("the device's first-boot status file, as provision reads it", () => {
  const text =
    'step=k3s\nstate=failed\nat=2026-12-02T06:00:00Z\nattempt=3\nretry=temporary\nnext=2026-12-02T06:02:00Z\nerror=cannot unseal: tang unreachable\nbundle=ab12\nsteps=preflight identity kernel_firewall encrypt_data_volume \n';
  it('parses every field and says where first boot stands', () => {
    const st = parseFirstbootState(text)!;
    expect(st).toEqual({
      step: 'k3s',
      state: 'failed',
      attempt: 3,
      retry: 'temporary',
      next: '2026-12-02T06:02:00Z',
      error: 'cannot unseal: tang unreachable',
      steps: ['preflight', 'identity', 'kernel_firewall', 'encrypt_data_volume'],
      bundle: 'ab12',
    });
    expect(describeFirstboot(st)).toBe(
      'first boot stopped at step k3s (attempt 3, temporary; the device retries at 2026-12-02T06:02:00Z; done: preflight identity kernel_firewall encrypt_data_volume): cannot unseal: tang unreachable',
    );
    expect(describeFirstboot({ ...st, retry: 'permanent' })).toMatch(/attempt 3, permanent: not retried;/);
    expect(parseFirstbootState('')).toBeUndefined();
  });
  it("reads it from preflight's fb. lines", () => {
    const stdout =
      'arch=aarch64\n' +
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => `fb.${l}`)
        .join('\n') +
      '\napplied=none\n';
    expect(firstbootStateFromFacts(stdout)?.step).toBe('k3s');
    expect(firstbootStateFromFacts('arch=aarch64\n')).toBeUndefined();
  });
});
