// The first-boot program as a service, run for real (dash) in a sandbox root:
//  - the step journal: the program killed (SIGKILL, whole process group) right after each write it makes —
//    every fsync (`sync FILE`, a PATH shim) and every system change (the EDGEFORGE_SYS stub) — leaves a state
//    the next run repairs: it finishes, and the result is the one of an uninterrupted run;
//  - the backoff schedule: capped exponential, jittered, deterministic per device;
//  - the service loop: a temporary failure is retried after the backoff until it clears; a permanent one
//    is recorded, not retried, and the one-time secrets are erased.
import { describe, it, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import { spawn, spawnSync, type SpawnSyncOptionsWithStringEncoding } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';

const FAKE_INSTALLER = '#!/bin/sh\necho "fake k3s installer: $INSTALL_K3S_EXEC"\n';
const ID = 'brno1-dock-001';

// a fault point: count, and at the FAULT_AT-th one kill the whole program (its process group) like a power cut
const FAULT = `fault() {
  [ -n "\${EF_TEST_FAULT_AT:-}" ] || return 0
  n=0
  [ ! -f "$EF_TEST_COUNTER" ] || read -r n <"$EF_TEST_COUNTER"
  n=$((n + 1))
  echo "$n" >"$EF_TEST_COUNTER"
  if [ "$n" = "$EF_TEST_FAULT_AT" ]; then kill -KILL 0; fi
}`;

// the system-command stub (records, emulates what later steps read back), with a fault point after the effect
const STUB = `#!/bin/sh
${FAULT}
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  useradd) for a; do u=$a; done; echo "$u:x:1000:1000::/home/$u:/bin/bash" >>"$EDGEFORGE_ROOT/etc/passwd" ;;
  passwd) for a; do u=$a; done; echo "$u:!:19000::::::" >>"$EDGEFORGE_ROOT/etc/shadow" ;;
  curl)
    [ ! -f "$EDGEFORGE_ROOT/offline" ] || { echo "curl: (7) Failed to connect" >&2; exit 7; }
    while [ $# -gt 0 ]; do if [ "$1" = -o ]; then printf '%s' "$EF_TEST_CURL_BODY" >"$2"; fi; shift; done ;;
esac
fault
`;

// sync FILE (the program's fsync) is a fault point. It does not fsync for real: a kill -9 loses nothing the
// page cache holds, so what this test can see is the order of writes and renames, and a real fsync per write
// on this shared machine's disk made the test minutes long.
const SYNC = `#!/bin/sh
${FAULT}
fault
`;

let fleet: Fleet;
let root: string;

let bundle: RenderedFile[];

function setup(): void {
  if (!bundle) {
    const f = structuredClone(fleet);
    if (f.k3s.install.mode === 'online') f.k3s.install.installScriptSha256 = sha256Hex(FAKE_INSTALLER);
    for (const d of f.active) if (d.id === ID) d.encryption = { ...d.encryption, mode: 'none' };
    const d = f.active.find((x) => x.id === ID)!;
    bundle = renderDevice(f, d, fixedSecretsFor(d)).filter((x) => x.path.startsWith('bundle/'));
  }
  for (const file of bundle) {
    const p = path.join(root, 'var/lib/edgeforge', file.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, file.bytes, { mode: file.mode });
  }
  const w = (p: string, t: string, mode = 0o644) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), t, { mode });
  };
  w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
  w('etc/shadow', 'root:$6$hash:19000::::::\n');
  w('etc/hosts', '127.0.0.1\tlocalhost\n127.0.1.1\tubuntu\n');
  w('boot/firmware/cmdline.txt', 'console=serial0,115200 root=LABEL=writable rootwait\n');
  w('var/lib/cloud/seed/nocloud/user-data', 'secret');
  w('stub.sh', STUB, 0o755);
  w('shim/sync', SYNC, 0o755);
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: `${path.join(root, 'shim')}:${process.env.PATH}`,
    EDGEFORGE_ROOT: root,
    EDGEFORGE_SYS: path.join(root, 'stub.sh'),
    EDGEFORGE_ARCH: 'aarch64',
    EF_TEST_CURL_BODY: FAKE_INSTALLER,
    EF_TEST_COUNTER: path.join(root, 'faults'),
    ...extra,
  };
}

const PROGRAM = () => path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh');

function run(args: string[] = [], extra: Record<string, string> = {}) {
  // detached: its own process group, which a fault kills whole (the shim's `kill -KILL 0`)
  // (spawnSync passes `detached` on to the child like spawn does; its type leaves it out)
  const r = spawnSync('dash', [PROGRAM(), ...args], { env: env(extra), encoding: 'utf8', detached: true } as SpawnSyncOptionsWithStringEncoding);
  return { code: r.status, signal: r.signal, stderr: r.stderr, stdout: r.stdout };
}

// scratch files in STATE/tmp are not state (each run starts by removing them)
const IGNORE = /^(sys\.log|faults|var\/log\/|var\/lib\/edgeforge\/\.lock$|var\/lib\/edgeforge\/tmp\/)/;
/** every file under the sandbox root with its content (times in the status file and applied.json masked) */
function snapshot(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (IGNORE.test(rel)) continue;
      if (e.isDirectory()) walk(rel);
      else {
        const t = readFileSync(path.join(root, rel), 'utf8').replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, 'TIME');
        out.set(rel, `${(statSync(path.join(root, rel)).mode & 0o777).toString(8)} ${t}`);
      }
    }
  };
  walk('');
  return out;
}

beforeAll(async () => {
  fleet = await exampleFleet();
});
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ef-fbsvc-'));
  setup();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('step journal: killed after any write, the next run repairs', () => {
  it('finishes with the same result as an uninterrupted run, wherever the program was killed', async () => {
    // the uninterrupted run: the reference, and how many fault points there are
    const clean = run([], { EF_TEST_FAULT_AT: '0' });
    expect(clean.stderr).toContain('[record]: ok');
    expect(clean.code).toBe(0);
    const points = Number(readFileSync(path.join(root, 'faults'), 'utf8'));
    const reference = snapshot();
    expect(points).toBeGreaterThan(20);
    expect(reference.get('var/lib/edgeforge/firstboot.state')).toMatch(/state=done/);
    for (const s of ['identity', 'kernel_firewall', 'k3s', 'erase_secrets', 'record']) expect(reference.has(`var/lib/edgeforge/firstboot/${s}`), s).toBe(true);

    const kills: string[] = [];
    for (let n = 1; n <= points; n++) {
      // minutes of spawnSync: let vitest's worker answer its runner between points (else its RPC times out)
      await new Promise((r) => setImmediate(r));
      rmSync(root, { recursive: true, force: true });
      mkdirSync(root);
      setup();
      const cut = run([], { EF_TEST_FAULT_AT: String(n) });
      expect(cut.signal, `fault ${n}`).toBe('SIGKILL');
      const stoppedIn = [...cut.stderr.matchAll(/\[(\w+)\]: begin/g)].map((m) => m[1]).pop();
      kills.push(`${n}:${stoppedIn}`);
      const again = run();
      expect(again.code, `after fault ${n} (in ${stoppedIn}): ${again.stderr}`).toBe(0);
      expect(again.stderr, `after fault ${n} (in ${stoppedIn})`).toContain('[end]: done');
      // no half-written file, nothing the clean run does not have, nothing missing, same bytes and modes
      const got = snapshot();
      expect(
        [...got.keys()].filter((k) => k.includes('edgeforge-new')),
        `after fault ${n}`,
      ).toEqual([]);
      expect([...got.keys()].sort(), `after fault ${n} (in ${stoppedIn})`).toEqual([...reference.keys()].sort());
      for (const [k, v] of reference) expect(got.get(k), `${k} after fault ${n} (in ${stoppedIn})`).toBe(v);
    }
    // the faults fell in every step that writes
    for (const s of ['identity', 'kernel_firewall', 'k3s', 'erase_secrets', 'record'])
      expect(
        kills.some((k) => k.endsWith(`:${s}`)),
        s,
      ).toBe(true);
  }, 900_000);

  it('a run resumes at the first unfinished step: finished steps are not run again', () => {
    writeFileSync(path.join(root, 'offline'), '');
    const first = run();
    expect(first.code).toBe(1);
    expect(first.stderr).toContain("stopped at step 'k3s' (attempt 1, temporary)");
    const second = run();
    expect(second.code).toBe(1);
    expect([...second.stderr.matchAll(/\[(\w+)\]: begin/g)].map((m) => m[1])).toEqual(['preflight', 'k3s']);
    expect(second.stderr).toContain('[k3s]: begin (attempt 2)');
    const st = readFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'utf8');
    expect(st).toMatch(/^step=k3s\nstate=failed\n/);
    expect(st).toContain('attempt=2\nretry=temporary\n');
    expect(st).toContain('steps=preflight identity kernel_firewall encrypt_data_volume \n');
    // secrets stay while a step that needs them is unfinished
    expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle/secrets/k3s-token'))).toBe(true);
    // `provision --force` (EDGEFORGE_FRESH=1): every step again
    const fresh = run([], { EDGEFORGE_FRESH: '1' });
    expect([...fresh.stderr.matchAll(/\[(\w+)\]: begin/g)].map((m) => m[1])).toEqual(['preflight', 'identity', 'kernel_firewall', 'encrypt_data_volume', 'k3s']);
    expect(fresh.stderr).toContain('[k3s]: begin (attempt 1)'); // the attempt count starts again too
    const status = run(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`first boot of ${ID}: waiting to retry step k3s (attempt 1 failed at`);
    expect(status.stdout).toMatch(/last error: cannot download the K3s install script/);
  });
});

describe('backoff schedule', () => {
  const schedule = (extra: Record<string, string> = {}, id?: string) => {
    const r = run(['backoff', '12'], extra);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ').map(Number));
    return id ? lines : lines;
  };

  it('30 s doubling to 15 min, each delay between half and all of that, the same every time for a device', () => {
    const a = schedule();
    expect(a.map((l) => l[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    a.forEach(([n, s]) => {
      const cap = Math.min(30 * 2 ** (n - 1), 900);
      expect(s, `attempt ${n}`).toBeGreaterThanOrEqual(cap / 2);
      expect(s, `attempt ${n}`).toBeLessThanOrEqual(cap);
    });
    // jittered: not all at the top of their range
    expect(a.filter(([n, s]) => s !== Math.min(30 * 2 ** (n - 1), 900)).length).toBeGreaterThan(6);
    expect(schedule()).toEqual(a); // deterministic
  });

  it('the jitter depends on the device (seed): another device id gives another schedule', () => {
    const a = schedule();
    const fb = PROGRAM();
    writeFileSync(fb, readFileSync(fb, 'utf8').replace(`EF_DEVICE_ID='${ID}'`, "EF_DEVICE_ID='brno1-dock-999'"));
    expect(schedule()).not.toEqual(a);
  });

  it('the test-only knob EDGEFORGE_BACKOFF="BASE CAP" (or its file) shortens it', () => {
    const s = schedule({ EDGEFORGE_BACKOFF: '2 8' });
    expect(s.map(([, d]) => d).every((d) => d >= 1 && d <= 8)).toBe(true);
    mkdirSync(path.join(root, 'etc/edgeforge'), { recursive: true });
    writeFileSync(path.join(root, 'etc/edgeforge/firstboot-backoff.test'), '4 4\n');
    expect(
      schedule()
        .map(([, d]) => d)
        .every((d) => d >= 2 && d <= 4),
    ).toBe(true);
    rmSync(path.join(root, 'etc/edgeforge/firstboot-backoff.test'));
    // the kernel command line (the qemu boot test)
    mkdirSync(path.join(root, 'proc'), { recursive: true });
    writeFileSync(path.join(root, 'proc/cmdline'), 'console=ttyAMA0 root=/dev/vda2 edgeforge.test_backoff=6:6\n');
    expect(
      schedule()
        .map(([, d]) => d)
        .every((d) => d >= 3 && d <= 6),
    ).toBe(true);
    expect(
      schedule()
        .map(([, d]) => d)
        .some((d) => d < 6),
    ).toBe(true);
  });
});

describe('service loop', () => {
  it('retries a temporary failure after the backoff and finishes once it clears, without a restart', async () => {
    writeFileSync(path.join(root, 'offline'), '');
    const child = spawn('dash', [PROGRAM(), 'service'], { env: env({ EDGEFORGE_BACKOFF: '1 2' }), detached: true });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const state = () => readFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'utf8');
    // wait for the third attempt at k3s to have FAILED (up to 60 s: a loaded 2-core machine is slow), then bring "the
    // network" up. (attempt=3 alone is written when that attempt begins: bringing the network up then let it succeed.)
    const thirdFailed = /^step=k3s\nstate=failed\n(?:.*\n)*?attempt=3\n/;
    for (let i = 0; i < 600 && !thirdFailed.test(existsSync(path.join(root, 'var/lib/edgeforge/firstboot.state')) ? state() : ''); i++) await new Promise((r) => setTimeout(r, 100));
    expect(state()).toMatch(thirdFailed);
    rmSync(path.join(root, 'offline'));
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/attempt 1 at step k3s failed: cannot download the K3s install script.*; next attempt in [12] s/);
    expect(stderr).toMatch(/attempt 3 at step k3s failed/);
    expect(stderr).toContain('first boot finished');
    expect(state()).toMatch(/^step=end\nstate=done\n/);
  }, 120_000);

  it('a permanent failure is recorded, not retried, and the one-time secrets are erased', () => {
    // a pinned-hash mismatch: the served install script is not the pinned one
    const r = run(['service'], { EDGEFORGE_BACKOFF: '1 1', EF_TEST_CURL_BODY: '#!/bin/sh\necho tampered\n' });
    expect(r.code).toBe(78);
    expect(r.stderr.match(/\[k3s\]: begin/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/K3s install script: .* has sha256 ([0-9a-f]{64}) but edgeforge pinned ([0-9a-f]{64})/);
    expect(r.stderr).toContain('failed permanently');
    const st = readFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'utf8');
    expect(st).toMatch(/^step=k3s\nstate=failed\n(.*\n)*retry=permanent\n/);
    expect(readdirSync(path.join(root, 'var/lib/edgeforge/bundle/secrets'))).toEqual([]);
    expect(readFileSync(path.join(root, 'var/lib/cloud/seed/nocloud/user-data'), 'utf8')).toMatch(/one-time secrets this seed carried were erased/);
    // started again (a reboot): it says so and stops at once
    const again = run(['service']);
    expect(again.code).toBe(78);
    expect(again.stderr).toContain('a permanent failure is recorded at step k3s');
    expect(again.stderr).not.toContain('[k3s]: begin');
    const status = run(['status']);
    expect(status.stdout).toContain('FAILED PERMANENTLY at step k3s');
    expect(status.stdout).toContain('edgeforge-firstboot retry');
  });
});
