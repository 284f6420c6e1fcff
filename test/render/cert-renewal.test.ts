// The K3s certificate-renewal check: the device program run by dash in a sandbox root against
// real certificates made by openssl — 30 days left: K3s restarted; 200 days left: nothing — servers and
// agents; shellcheck-clean; its timer fires inside the site's window (systemd-analyze reads it).
import { describe, expect, it, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { renewalFirstbootFragment, renewalProgram, renewalServiceUnit, renewalTimerUnit, windowOnCalendar, RENEW_DAYS } from '../../scripts/render/day2/renewal.ts';
import { composeFirstboot } from '../../scripts/render/firstboot/compose.ts';
import { CERT_RENEWAL, K3S_STATE_DIR } from '../../scripts/device/layout.ts';
import { exampleFleet } from '../../scripts/testkit/fixed-secrets.ts';

const HAVE = requireTools(['openssl', 'dash', 'shellcheck'], 'test/render/cert-renewal.test.ts');
const STUB = `#!/bin/sh\nprintf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"\n`;
let root: string;
afterEach(() => root && rmSync(root, { recursive: true, force: true }));

function sandbox(): string {
  root = mkdtempSync(path.join(tmpdir(), 'ef-renewal-'));
  writeFileSync(path.join(root, 'stub.sh'), STUB);
  chmodSync(path.join(root, 'stub.sh'), 0o755);
  writeFileSync(path.join(root, 'renewal.sh'), renewalProgram());
  return root;
}

/** A self-signed certificate valid for `days`, written where K3s keeps it (relative to K3S_STATE_DIR). */
function cert(rel: string, days: number): void {
  const file = path.join(root, K3S_STATE_DIR, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  const r = spawnSync(
    tool('openssl'),
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', String(days), '-subj', `/CN=${path.basename(rel)}`, '-keyout', `${file}.key`, '-out', file],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
}

function run(service = 'k3s') {
  const r = spawnSync('dash', [path.join(root, 'renewal.sh')], {
    env: { PATH: process.env.PATH, EDGEFORGE_ROOT: root, EDGEFORGE_SYS: path.join(root, 'stub.sh'), EDGEFORGE_LOG: path.join(root, 'renewal.log'), RENEW_SERVICE: service },
    encoding: 'utf8',
  });
  const sys = existsSync(path.join(root, 'sys.log')) ? readFileSync(path.join(root, 'sys.log'), 'utf8') : '';
  const state = existsSync(path.join(root, CERT_RENEWAL.state)) ? readFileSync(path.join(root, CERT_RENEWAL.state), 'utf8') : '';
  return { code: r.status, stderr: r.stderr, sys, state };
}

describe.runIf(HAVE)('certificate-renewal check against openssl-made certificates', () => {
  it('a server certificate with 30 days left: restarts k3s and says which certificate', () => {
    sandbox();
    cert('k3s/server/tls/client-admin.crt', 30);
    cert('k3s/server/tls/serving-kube-apiserver.crt', 200);
    cert('k3s/server/tls/server-ca.crt', 3650);
    cert('k3s/agent/client-kubelet.crt', 200);
    const r = run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.sys).toBe('systemctl restart k3s\n');
    expect(r.stderr).toMatch(/\/var\/lib\/rancher\/k3s\/server\/tls\/client-admin\.crt expires .*: fewer than 90 days left/);
    expect(r.stderr).toMatch(/1 of 3 K3s certificate\(s\) expire within 90 days \(soonest: \/var\/lib\/rancher\/k3s\/server\/tls\/client-admin\.crt/);
    expect(r.stderr).toMatch(/K3s CA certificates expire/);
    expect(r.state).toMatch(/^checked=3\nsoon=1\nsoonest=\/var\/lib\/rancher\/k3s\/server\/tls\/client-admin\.crt\n.*restarted=yes\n/s);
    expect(readFileSync(path.join(root, 'renewal.log'), 'utf8')).toContain('restarted k3s');
  });

  it('every certificate with 200 days left: nothing restarted, and it says so', () => {
    sandbox();
    cert('k3s/server/tls/client-admin.crt', 200);
    cert('k3s/agent/serving-kubelet.crt', 200);
    const r = run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.sys).toBe('');
    expect(r.stderr).toMatch(/all 2 K3s certificate\(s\) valid for more than 90 days/);
    expect(r.state).toContain('restarted=no');
  });

  it('an agent certificate with 30 days left: restarts k3s-agent; a CA near expiry alone restarts nothing', () => {
    sandbox();
    cert('k3s/agent/client-kubelet.crt', 30);
    expect(run('k3s-agent').sys).toBe('systemctl restart k3s-agent\n');
    rmSync(path.join(root, 'sys.log'), { force: true });
    rmSync(path.join(root, K3S_STATE_DIR, 'k3s/agent/client-kubelet.crt'));
    cert('k3s/agent/server-ca.crt', 30);
    cert('k3s/agent/client-kube-proxy.crt', 365);
    expect(run('k3s-agent').sys).toBe('');
  });

  it('before K3s has started (no certificates): nothing to do, exit 0', () => {
    sandbox();
    const r = run();
    expect(r.code).toBe(0);
    expect(r.sys).toBe('');
    expect(r.stderr).toMatch(/no K3s leaf certificates/);
  });

  it('passes shellcheck: the program, the first-boot fragment, a first-boot program composed with it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-renewal-sc-'));
    const fleet = await exampleFleet();
    const files = { 'renewal.sh': renewalProgram(), 'fragment.sh': renewalFirstbootFragment(), 'firstboot.sh': composeFirstboot(fleet.active[0], fleet, [renewalFirstbootFragment()]) };
    for (const [n, t] of Object.entries(files)) {
      writeFileSync(path.join(dir, n), t);
      const r = spawnSync(tool('shellcheck'), ['-s', 'sh', path.join(dir, n)], { encoding: 'utf8' });
      expect(r.stdout + r.stderr, n).toBe('');
      expect(r.status).toBe(0);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('certificate-renewal units', () => {
  it("the timer fires inside the window, in its time zone, spread over it; the service restarts the node's own K3s", async () => {
    const fleet = await exampleFleet();
    const ulsan = fleet.sites.find((s) => s.name === 'ulsan-plant-1')!;
    expect(windowOnCalendar(ulsan.window)).toBe('*-*-* 05:30:00 Asia/Seoul');
    expect(windowOnCalendar({ ...ulsan.window, days: ['sat', 'sun'] })).toBe('Sat,Sun *-*-* 05:30:00 Asia/Seoul');
    const t = renewalTimerUnit(ulsan.window);
    // a 60-minute window: up to 50 minutes of per-device delay, so the restart ends inside it
    for (const l of ['OnCalendar=*-*-* 05:30:00 Asia/Seoul', 'RandomizedDelaySec=3000', 'FixedRandomDelay=true', 'Persistent=false', 'WantedBy=timers.target']) expect(t).toContain(l);
    const agent = fleet.active.find((d) => d.cluster.kind === 'multi-node-agent')!;
    expect(renewalServiceUnit(agent)).toContain('Environment=RENEW_SERVICE=k3s-agent');
    expect(renewalServiceUnit(fleet.active[0])).toContain('Environment=RENEW_SERVICE=k3s');
    expect(renewalServiceUnit(fleet.active[0])).toContain(`ExecStart=${CERT_RENEWAL.program}`);
    expect(RENEW_DAYS).toBe(90);
    const v = spawnSync(tool('systemd-analyze'), ['calendar', windowOnCalendar({ ...ulsan.window, days: ['sat', 'sun'] })], { encoding: 'utf8' });
    expect(v.error).toBeUndefined();
    expect(v.status, v.stderr).toBe(0);
    // 05:30 in Seoul (UTC+9, no daylight saving) is 20:30 UTC the day before
    expect(v.stdout).toMatch(/Next elapse: (Fri|Sat) \d{4}-\d\d-\d\d 20:30:00 UTC/);
  });
});
