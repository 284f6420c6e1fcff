// The device-side reporter (POSIX sh, run by dash) against a real Mosquitto on 127.0.0.1, in a fake root
// like the first-boot tests; and the first-boot program with the status stage: milestones recorded, the
// reporter installed (credential 0600 in a 0700 dir) and started, nothing touched by a dry run.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import mqtt from 'mqtt';
import { makeTestCerts } from '../../scripts/testkit/mosquitto.ts';
import { deviceTopic } from '../../scripts/inventory/fleet-status.ts';
import { readStatus } from '../../scripts/fleet-status/report.ts';
import { credentialFile, statusBundleFiles, statusConf, statusFirstbootFragment, statusReporterProgram } from '../../scripts/render/status/compose.ts';
import { STATUS_PATHS, layoutShellVariables } from '../../scripts/device/layout.ts';
import { onCalendar, statusTimer } from '../../scripts/render/status/units.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { composeFirstboot } from '../../scripts/render/firstboot/compose.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { ADMIN_PASSWORD, statusEnv, type StatusEnv } from './env.ts';
import type { ResolvedDevice } from '../../scripts/inventory/fleet.ts';

const HAVE = requireTools(['mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'openssl'], 'test/status/reporter.test.ts');
const SH = path.resolve('scripts/render/status/sh');

describe('reporter program: shell hygiene', () => {
  it('passes shellcheck (reporter, first-boot fragment, and a first-boot program composed with it)', () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'ef-sc-'));
    return (async () => {
      const fleet = await exampleFleet();
      const fb = path.join(tmp, 'firstboot.sh');
      writeFileSync(fb, composeFirstboot(fleet.active[0], fleet, [statusFirstbootFragment()]));
      const rep = path.join(tmp, 'edgeforge-status-report');
      writeFileSync(rep, statusReporterProgram());
      for (const f of [rep, path.join(SH, 'milestone.sh'), fb]) {
        const r = spawnSync(tool('shellcheck'), ['-s', 'sh', f], { encoding: 'utf8' });
        expect(r.error, 'shellcheck is not installed').toBeUndefined();
        expect(r.stdout + r.stderr, f).toBe('');
        expect(r.status).toBe(0);
      }
      rmSync(tmp, { recursive: true, force: true });
    })();
  });

  it('the shell sources read every device path from the layout header, none typed', () => {
    const rep = statusReporterProgram();
    const frag = statusFirstbootFragment();
    for (const [name, value] of layoutShellVariables()) if (rep.includes(`$${name}`)) expect(rep).toContain(`${name}='${value}'`);
    for (const v of ['EF_STATUS_CONF', 'EF_STATUS_STATE', 'EF_STATUS_WORK', 'EF_DATA_STATUS', 'EF_APPLIED_FILE']) expect(rep).toContain(`$R$${v}`);
    // (the status file itself is written by the first-boot program: scripts/render/firstboot/lib.sh)
    expect(frag).toContain('$R$EF_STATUS_DIR');
    // the program and its units go through the shell core's install_timer_job, which puts them under $R
    expect(frag).toContain('install_timer_job "$BUNDLE/status" "$EF_STATUS_PROGRAM" "$EF_STATUS_SERVICE" "$EF_STATUS_TIMER"');
    for (const p of [STATUS_PATHS.etcDir, STATUS_PATHS.workDir, STATUS_PATHS.firstbootState, STATUS_PATHS.program, '/var/lib/edgeforge', '/var/lib/rancher'])
      for (const src of [readFileSync(path.join(SH, 'status-report.sh'), 'utf8'), frag]) expect(src).not.toContain(p);
    expect(STATUS_PATHS.credential).toBe(`${STATUS_PATHS.etcDir}/mosquitto_pub`);
  });

  it('timer: a wall-clock period with a fixed per-device offset inside it, Persistent', () => {
    expect(onCalendar(900)).toBe('*-*-* *:00/15:00');
    expect(onCalendar(3600)).toBe('*-*-* *:00:00');
    expect(onCalendar(6 * 3600)).toBe('*-*-* 00/6:00:00');
    const t = statusTimer(900);
    for (const l of ['RandomizedDelaySec=900', 'FixedRandomDelay=true', 'Persistent=true', 'OnBootSec=2min']) expect(t).toContain(l);
    const v = spawnSync(tool('systemd-analyze'), ['calendar', onCalendar(900)], { encoding: 'utf8' });
    if (!v.error) expect(v.status, v.stderr).toBe(0);
  });
});

describe.runIf(HAVE)('reporter program against a real Mosquitto', () => {
  let env: StatusEnv;
  let root: string;
  beforeAll(async () => {
    env = await statusEnv(3);
  }, 60_000);
  afterAll(async () => {
    await env?.broker.stop();
    if (env) rmSync(env.dir, { recursive: true, force: true });
  });

  function fakeRoot(d: ResolvedDevice, password: string, topic?: string) {
    root = mkdtempSync(path.join(tmpdir(), 'ef-reporter-'));
    const w = (p: string, t: string, mode = 0o644) => {
      mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
      writeFileSync(path.join(root, p), t, { mode });
    };
    let conf = statusConf(d, env.fleet.name, env.cfg);
    if (topic) conf = conf.replace(/^EFS_TOPIC=.*$/m, `EFS_TOPIC='${topic}'`);
    w('etc/edgeforge/status/status.conf', conf);
    w('etc/edgeforge/status/ca.pem', env.ca);
    w('etc/edgeforge/status/mosquitto_pub', credentialFile(d.id, password), 0o600);
    w(
      'var/lib/edgeforge/firstboot.state',
      'step=encrypt_data_volume\nstate=failed\nat=2026-12-02T01:00:00Z\nattempt=3\nretry=temporary\nnext=2026-12-02T01:02:00Z\nerror=clevis: tang at "http://10.0.0.5" \\ did not answer\n',
    );
    w(
      'var/lib/edgeforge/applied.json',
      `{"format":"edgeforge-applied/1","device":"${d.id}","bundleSha256":"${'c'.repeat(64)}","k3sVersion":"v1.35.6+k3s1","steps":["preflight"],"rebootRequired":false,"appliedAt":"2026-12-01T00:00:00Z"}\n`,
    );
    w('etc/edgeforge/data-volume.conf', "EDV_UUID='x'\n");
    w('run/edgeforge/data-volume.status', 'locked since 2026-12-02T00:30:00Z; attempt 4 failed; next in 40s; recover by hand: edgeforge keys recover x\n');
  }
  const reporterFile = () => {
    const f = path.join(root, 'edgeforge-status-report.under-test');
    if (!existsSync(f)) writeFileSync(f, statusReporterProgram());
    return f;
  };
  const runReporter = () => spawnSync(tool('dash'), [reporterFile()], { env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EFS_TIMEOUT: '20' }, encoding: 'utf8' });

  async function retained(topic: string): Promise<{ payload: Buffer; expiry?: number } | undefined> {
    const c = await mqtt.connectAsync(env.cfg.broker.url, { protocolVersion: 5, username: env.cfg.adminUser, password: ADMIN_PASSWORD, ca: env.ca, reconnectPeriod: 0 });
    const got = await new Promise<{ payload: Buffer; expiry?: number } | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), 1500);
      c.on('message', (_t, payload, packet) => (clearTimeout(t), resolve({ payload, expiry: packet.properties?.messageExpiryInterval })));
      void c.subscribeAsync(topic);
    });
    await c.endAsync();
    return got;
  }

  it('publishes one status document, retained with a message expiry, that edgeforge status reads', async () => {
    const d = env.fleet.active[0];
    fakeRoot(d, env.passwords.get(d.id)!);
    const r = runReporter();
    expect(r.stderr).toContain('sent status');
    expect(r.status).toBe(0);
    const got = await retained(deviceTopic(env.cfg, d));
    expect(got).toBeDefined();
    expect(got!.expiry).toBeGreaterThan(env.cfg.expirySec - 10);
    expect(got!.expiry).toBeLessThanOrEqual(env.cfg.expirySec);
    const s = readStatus(got!.payload, d.id);
    expect(s.ok, got!.payload.toString()).toBe(true);
    if (!s.ok) return;
    expect(s.report.firstboot).toEqual({
      step: 'encrypt_data_volume',
      state: 'failed',
      at: '2026-12-02T01:00:00Z',
      error: 'clevis: tang at "http://10.0.0.5" \\ did not answer',
      retry: 'temporary',
      attempt: 3,
      next: '2026-12-02T01:02:00Z',
    });
    expect(s.report.dataVolume.state).toBe('locked');
    expect(s.report.dataVolume.since).toBe('2026-12-02T00:30:00Z');
    expect(s.report.applied.bundleSha256).toBe('c'.repeat(64));
    expect(s.report.site).toBe(d.siteId);
    expect(s.report.k3s.version).toBe('unknown');
    expect(s.report.gitops.ready).toBe('unknown');
    expect(Math.abs(Date.parse(s.report.time) - Date.now())).toBeLessThan(60_000);
    expect(s.report.disk.freeMiB).toBeGreaterThan(0);
    // the password is nowhere but the 0600 options file
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/status/report.json'), 'utf8')).not.toContain(env.passwords.get(d.id)!);
    rmSync(root, { recursive: true, force: true });
  });

  it('the broker CA is pinned: a broker certificate from another CA is refused before the password is sent', async () => {
    const d = env.fleet.active[0];
    fakeRoot(d, env.passwords.get(d.id)!);
    const other = makeTestCerts(path.join(root, 'other-ca'));
    writeFileSync(path.join(root, 'etc/edgeforge/status/ca.pem'), readFileSync(other.ca));
    const before = env.broker.log().length;
    const r = runReporter();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/certificate verify failed|unable to get local issuer|Protocol error|TLS/i);
    // the same device with the right CA: the broker logs its login (so the line above can be absent for a reason)
    writeFileSync(path.join(root, 'etc/edgeforge/status/ca.pem'), env.ca);
    const mark = env.broker.log().length;
    expect(runReporter().status).toBe(0);
    for (let i = 0; i < 50 && !env.broker.log().slice(mark).includes(`u'${d.id}'`); i++) await new Promise((res) => setTimeout(res, 100));
    expect(env.broker.log().slice(mark)).toMatch(new RegExp(`u'${d.id}'`));
    // the log is in order: the one login since the refused attempt is the good run's (the refused one never logged in)
    expect(env.broker.log().slice(before).split(`u'${d.id}'`).length - 1).toBe(1);
    rmSync(root, { recursive: true, force: true });
  });

  it("a refused credential or another device's topic: exit non-zero, said, nothing published", async () => {
    const [a, b] = env.fleet.active.slice(1);
    fakeRoot(a, env.passwords.get(b.id)!);
    let r = runReporter();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/could not send the status.*credential refused/);
    rmSync(root, { recursive: true, force: true });
    fakeRoot(a, env.passwords.get(a.id)!, deviceTopic(env.cfg, b));
    r = runReporter();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Publish 1 failed: Not authori[sz]ed/);
    expect(await retained(deviceTopic(env.cfg, b))).toBeUndefined();
    rmSync(root, { recursive: true, force: true });
  });
});

// ---- the first-boot program with the status stage, sandboxed (EDGEFORGE_SYS records system commands)
const STUB = `#!/bin/sh
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  useradd) for a; do u=$a; done; echo "$u:x:1000:1000::/home/$u:/bin/bash" >>"$EDGEFORGE_ROOT/etc/passwd" ;;
  passwd) for a; do u=$a; done; echo "$u:!:19000::::::" >>"$EDGEFORGE_ROOT/etc/shadow" ;;
  curl) while [ $# -gt 0 ]; do if [ "$1" = -o ]; then printf '%s' "$EF_TEST_CURL_BODY" >"$2"; fi; shift; done ;;
esac
`;
const FAKE_INSTALLER = '#!/bin/sh\necho fake installer\n';

describe('first-boot program with the status stage (sandbox root)', () => {
  it('records each milestone, installs the reporter once bundle checks passed, starts it; a dry run changes nothing', async () => {
    const fleet = structuredClone(await exampleFleet());
    if (fleet.k3s.install.mode === 'online') fleet.k3s.install.installScriptSha256 = sha256Hex(FAKE_INSTALLER);
    const d = fleet.active.find((x) => x.id === 'brno1-dock-001')!;
    d.encryption = { ...d.encryption, mode: 'none' };
    const cfg = {
      broker: { host: 'mqtt.example.com', port: 8883, url: 'mqtts://mqtt.example.com:8883' },
      caFile: 'ca.pem',
      period: '15m',
      periodSource: 'status.period',
      periodSec: 900,
      expirySec: 1800,
      prefix: 'edgeforge',
      adminUser: 'edgeforge-admin',
      fleetTopic: `edgeforge/${fleet.name}`,
    };
    const files = renderDevice(fleet, d, fixedSecretsFor(d), {
      status: {
        inputs: {},
        render: (x) => ({ files: statusBundleFiles(x, fleet.name, cfg, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'p'.repeat(64)), fragment: statusFirstbootFragment() }),
      },
    });
    const cred = files.find((f) => f.path === 'bundle/status/mosquitto_pub')!;
    expect(cred.secret).toBe(true);
    expect(cred.mode).toBe(0o600);
    expect(Buffer.from(files.find((f) => f.path === 'bundle/firstboot.sh')!.bytes).toString()).not.toContain('p'.repeat(64));
    const root = mkdtempSync(path.join(tmpdir(), 'ef-fbstatus-'));
    for (const f of files.filter((x) => x.path.startsWith('bundle/'))) {
      const p = path.join(root, 'var/lib/edgeforge', f.path);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, f.bytes, { mode: f.mode });
    }
    const w = (p: string, t: string) => (mkdirSync(path.dirname(path.join(root, p)), { recursive: true }), writeFileSync(path.join(root, p), t));
    w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
    w('etc/shadow', 'root:$6$hash:19000::::::\n');
    w('boot/firmware/cmdline.txt', 'console=serial0 rootwait\n');
    w('stub.sh', STUB);
    chmodSync(path.join(root, 'stub.sh'), 0o755);
    const run = (env: Record<string, string> = {}) => {
      const r = spawnSync('dash', [path.join(root, 'var/lib/edgeforge/bundle/firstboot.sh')], {
        env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_ARCH: 'aarch64', EF_TEST_CURL_BODY: FAKE_INSTALLER, ...env },
        encoding: 'utf8',
      });
      const sys = existsSync(path.join(root, 'sys.log')) ? readFileSync(path.join(root, 'sys.log'), 'utf8') : '';
      rmSync(path.join(root, 'sys.log'), { force: true });
      return { ...r, sys };
    };
    // dry run: preflight only, nothing of the status stage
    let r = run({ EDGEFORGE_STEPS: 'preflight' });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(path.join(root, 'var/lib/edgeforge/firstboot.state'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/edgeforge/status'))).toBe(false);
    expect(r.sys).not.toContain('edgeforge-status');
    // the whole program
    r = run();
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'utf8')).toMatch(
      /^step=end\nstate=done\nat=\S+Z\nattempt=0\nretry=\nnext=\nerror=\nbundle=[0-9a-f]{64}\nsteps=preflight identity .* record \n$/,
    );
    const mode = (p: string) => statSync(path.join(root, p)).mode & 0o777;
    expect(mode('etc/edgeforge/status')).toBe(0o700);
    expect(mode('etc/edgeforge/status/mosquitto_pub')).toBe(0o600);
    expect(readFileSync(path.join(root, 'etc/edgeforge/status/mosquitto_pub'), 'utf8')).toBe(`-u ${d.id}\n-P ${'p'.repeat(64)}\n`);
    expect(mode('usr/local/sbin/edgeforge-status-report')).toBe(0o755);
    expect(r.sys).toContain('systemctl enable edgeforge-status.timer');
    // one report per step begin after preflight (identity ... record) and one at the end
    const starts = r.sys.split('\n').filter((l) => l === 'systemctl start --no-block edgeforge-status.service');
    expect(starts.length).toBe(8);
    // the credential is no one-time secret: erase_secrets keeps it
    expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle/status/mosquitto_pub'))).toBe(true);
    // a failure is recorded with its message, and reported
    rmSync(path.join(root, 'var/lib/edgeforge/bundle/k3s/config.yaml'));
    r = run({ EDGEFORGE_STEPS: 'identity k3s' });
    expect(r.status).toBe(1);
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/firstboot.state'), 'utf8')).toMatch(
      /^step=k3s\nstate=failed\nat=\S+\nattempt=1\nretry=temporary\nnext=\nerror=missing bundle file .*config\.yaml\nbundle=/,
    );
    expect(r.sys).toContain('systemctl start --no-block edgeforge-status.service');
    rmSync(root, { recursive: true, force: true });
  });
});

describe('base-image profiles', () => {
  it('list mosquitto_pub (mosquitto-clients) as required', async () => {
    const { loadProfile } = await import('../../scripts/disk/profiles.ts');
    for (const name of ['raspi-mbr', 'uefi-gpt']) {
      const p = await loadProfile(name);
      expect(p.requires).toContainEqual(expect.objectContaining({ command: 'mosquitto_pub', package: 'mosquitto-clients' }));
    }
  });
});

describe("provision's preflight asks for mosquitto_pub", () => {
  it('the read-only facts say whether the device has it', async () => {
    const { PREFLIGHT_SCRIPT, parseFacts } = await import('../../scripts/provision/phase/preflight.ts');
    const empty = mkdtempSync(path.join(tmpdir(), 'ef-nopath-'));
    const without = spawnSync(tool('dash'), ['-c', PREFLIGHT_SCRIPT], { env: { PATH: empty }, encoding: 'utf8' });
    expect(parseFacts(without.stdout).mosquitto_pub).toBe('no');
    const withIt = spawnSync(tool('dash'), ['-c', PREFLIGHT_SCRIPT], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    expect(parseFacts(withIt.stdout).mosquitto_pub).toBe(spawnSync('sh', ['-c', 'command -v mosquitto_pub']).status === 0 ? 'yes' : 'no');
    rmSync(empty, { recursive: true, force: true });
  });
});
