// docs/status.md "The broker (Debian 12)", run line by line as written, against a real Mosquitto started as root
// that drops to the `mosquitto` user the way Debian runs it: set-up, then revoke → broker-config → reload (SIGHUP)
// and → restart. Each time every other device still publishes with its own credential, the revoked one is
// refused, the broker's files are still its user's, and the admin still reads the fleet.
//
// What the test changes in the documented lines, and only this: `/etc/mosquitto` and `~` are directories of its
// own; every `edgeforge` command gets `-i`/`--keys`; `status broker-config` also gets a loopback `--bind` and the
// test certificates' paths; `systemctl restart mosquitto` runs the drop-in's ExecStart (stopping the running
// broker first), `systemctl reload mosquitto` is Debian's ExecReload (`kill -HUP`); `systemctl edit` is read
// for its ExecStart. Other lines go to `sh -c` as they are.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireRoot, requireTools } from '../../scripts/testkit/tools.ts';
import { runCli } from '../helpers.ts';
import { freePort, makeTestCerts, startBroker, type RunningBroker } from '../../scripts/testkit/mosquitto.ts';
import { publishAll, simReport } from '../../scripts/testkit/status-reports.ts';
import { deviceTopic } from '../../scripts/inventory/fleet-status.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { ADMIN_PBKDF2_ITERATIONS, mosquittoHashIterations } from '../../scripts/keys/mosquitto-passwd.ts';
import { passwdLine } from '../../scripts/fleet-status/admin-credential.ts';
import { brokerUser, openToBroker } from './env.ts';

const HAVE = requireTools(['mosquitto', 'openssl'], 'test/status/procedure.test.ts') && requireRoot('test/status/procedure.test.ts (the broker drops from root to the mosquitto user)');
const DOC = path.resolve('docs/status.md');

/** The shell block after `<!-- procedure: NAME -->` in docs/status.md, one command per line (comments dropped). */
function procedure(name: string): string[] {
  const text = readFileSync(DOC, 'utf8');
  const at = text.indexOf(`<!-- procedure: ${name} -->`);
  expect(at, `docs/status.md has no "<!-- procedure: ${name} -->"`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(text.slice(at))![1];
  return block.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
}

describe.runIf(HAVE)('docs/status.md, the broker on Debian: set-up, revoke → reload, restart', () => {
  let dir: string;
  let etc: string;
  let home: string;
  let inv: string;
  let keys: string;
  let certs: { ca: string; cert: string; key: string };
  let broker: RunningBroker | undefined;
  let execStart: string | undefined;
  const revoked = 'ulsan1-line1-002';
  const passwords = new Map<string, string>();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ef-procedure-'));
    openToBroker(dir);
    etc = path.join(dir, 'etc/mosquitto');
    home = path.join(dir, 'home');
    mkdirSync(etc, { recursive: true });
    mkdirSync(home, { recursive: true });
    inv = path.join(dir, 'fleet.yaml');
    keys = path.join(dir, 'keys');
    copyFileSync('inventory/example.yaml', inv);
    certs = makeTestCerts(path.join(dir, 'from-your-ca'));
    copyFileSync(certs.ca, path.join(dir, 'broker-ca.pem'));
    const port = await freePort();
    appendFileSync(inv, `\nstatus:\n  broker: mqtts://127.0.0.1:${port}\n  caFile: broker-ca.pem\n  period: 5m\n`);
    // each device's credential, as its bundle carries it
    const env = { SOURCE_DATE_EPOCH: '1767225600' };
    expect((await runCli(['keys', 'init', '--example-admin', '-i', inv, '--keys', keys], { env })).code).toBe(0);
    const b = await runCli(['build', '-i', inv, '--keys', keys, '-o', path.join(dir, 'out')], { env });
    expect(b.code, b.stderr).toBe(0);
    for (const d of (await loadInventoryFile(inv)).active) passwords.set(d.id, /^-P (\S+)$/m.exec(readFileSync(path.join(dir, 'out/devices', d.id, 'bundle/status/mosquitto_pub'), 'utf8'))![1]);
    expect(passwords.has(revoked)).toBe(true);
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const local = (line: string) => line.replaceAll('/etc/mosquitto', etc).replace(/(^|\s)~\//g, `$1${home}/`);

  async function run(line: string): Promise<void> {
    if (line.startsWith('systemctl edit mosquitto')) {
      execStart = /ExecStart=(\/usr\/sbin\/mosquitto -c \S+)/.exec(line)![1];
      return;
    }
    if (line === 'systemctl restart mosquitto') {
      await broker?.stop();
      const conf = /-c (\S+)$/.exec(local(execStart!))![1];
      broker = await startBroker(conf, (await loadInventoryFile(inv)).status!.broker.port);
      return;
    }
    if (line === 'systemctl reload mosquitto') return broker!.reload();
    if (line.startsWith('edgeforge ')) {
      const argv = local(line).split(/\s+/).slice(1);
      const extra = ['-i', inv, '--keys', keys];
      if (argv[0] === 'status' && argv[1] === 'broker-config')
        extra.push('--bind', '127.0.0.1', '--tls-cafile', `${etc}/certs/ca.pem`, '--tls-certfile', `${etc}/certs/broker.pem`, '--tls-keyfile', `${etc}/certs/broker.key`);
      const r = await runCli([...argv, ...extra]);
      expect(r.code, `${line}: ${r.stderr}`).toBe(0);
      expect(r.stderr, line).not.toMatch(/warning: .*belong to root/);
      return;
    }
    const r = spawnSync('sh', ['-c', local(line)], { cwd: path.dirname(certs.ca), env: { PATH: process.env.PATH, HOME: home }, encoding: 'utf8' });
    expect(r.status, `${line}: ${r.stderr}`).toBe(0);
  }

  /** Every active device but the revoked one publishes; the revoked one is refused; the broker runs as mosquitto; the admin reads. */
  async function fleetStillWorks(revokedNow: boolean) {
    const fleet = await loadInventoryFile(inv);
    const cfg = fleet.status!;
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${broker!.proc.pid}/status`, 'utf8'))![1];
    expect(Number(uid), 'the broker dropped root').toBe(brokerUser()!.uid);
    const ca = readFileSync(certs.ca, 'utf8');
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const everyone = fleet.devices.filter((d) => passwords.has(d.id));
    const res = await publishAll(
      cfg.broker.url,
      ca,
      everyone.map((d) => ({
        id: d.id,
        username: d.id,
        password: passwords.get(d.id)!,
        topic: deviceTopic(cfg, d),
        payload: simReport(d.id, d.siteId, fleet.name, { time: now }),
        expirySec: cfg.expirySec,
      })),
    );
    for (const d of everyone) {
      if (d.id === revoked && revokedNow) {
        expect(res.get(d.id)!.ok, `${d.id} (revoked) must be refused`).toBe(false);
        expect(res.get(d.id)!.reason).toMatch(/Not authorized|Bad User Name or Password/i);
      } else expect(res.get(d.id), d.id).toEqual({ ok: true, reason: 'accepted' });
    }
    const st = statSync(path.join(etc, 'edgeforge/passwd'));
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ ...brokerUser()!, mode: 0o600 });

    const s = await runCli(['status', '--json', '-i', inv, '-o', path.join(dir, 'out'), '--password-file', `${home}/.config/edgeforge/broker-admin`]);
    expect(s.stderr).toBe('');
    const doc = JSON.parse(s.stdout);
    expect(doc.devices.filter((x: { bucket: string }) => x.bucket !== 'neverSeen')).toHaveLength(fleet.active.length);
    return doc;
  }

  it('set-up as documented: the broker drops to mosquitto, reads its files, every device publishes', async () => {
    for (const line of procedure('setup')) await run(line);
    expect(statSync(`${home}/.config/edgeforge/broker-admin`).mode & 0o777).toBe(0o600);
    const admin = passwdLine(readFileSync(path.join(etc, 'edgeforge/passwd'), 'utf8'), 'edgeforge-admin')!;
    expect(mosquittoHashIterations(admin)).toBe(ADMIN_PBKDF2_ITERATIONS);
    expect(readFileSync(path.join(etc, 'edgeforge/mosquitto.conf'), 'utf8')).toMatch(/^use_username_as_clientid true$/m);
    await fleetStillWorks(false);
  });

  it('revoke → broker-config (no password) → reload: the others still publish, the revoked one is refused', async () => {
    const before = readFileSync(path.join(etc, 'edgeforge/passwd'), 'utf8');
    for (const line of procedure('revoke')) await run(line);
    const after = readFileSync(path.join(etc, 'edgeforge/passwd'), 'utf8');
    expect(after).not.toContain(`${revoked}:`);
    expect(passwdLine(after, 'edgeforge-admin')).toBe(passwdLine(before, 'edgeforge-admin'));
    expect(statSync(path.join(etc, 'edgeforge/data')).uid).toBe(brokerUser()!.uid);
    const doc = await fleetStillWorks(true);
    expect(doc.devices.find((x: { id: string }) => x.id === revoked)).toBeUndefined();
  });

  it('→ restart: the broker starts on the rewritten files (no "Unable to open pwfile"), retained statuses kept', async () => {
    const log = broker!.log();
    await run('systemctl restart mosquitto');
    expect(log + broker!.log()).not.toMatch(/Unable to open pwfile|Error opening password file/);
    const s = await runCli(['status', '--json', '-i', inv, '-o', path.join(dir, 'out'), '--password-file', `${home}/.config/edgeforge/broker-admin`]);
    expect(JSON.parse(s.stdout).read.retained).toBeGreaterThan(0);
    await fleetStillWorks(true);
  });

  it('the admin password file must be private and the password long enough; a root-owned new directory is named', async () => {
    const pw = path.join(dir, 'weak-admin');
    writeFileSync(pw, 'short-password\n', { mode: 0o600 });
    const to = path.join(dir, 'root-owned');
    let r = await runCli(['status', 'broker-config', '-i', inv, '--keys', keys, '--to', to, '--password-file', pw]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--password-file .*weak-admin\) is 14 characters long; use at least 20/);
    chmodSync(pw, 0o644);
    r = await runCli(['status', 'broker-config', '-i', inv, '--keys', keys, '--to', to, '--password-file', pw]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/may be read or written by others \(mode 0644\).*chmod 600/);
    r = await runCli(['status', 'broker-config', '-i', inv, '--keys', keys, '--to', to, '--password-file', `${home}/.config/edgeforge/broker-admin`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`belong to root: Mosquitto started as root drops to its own user (mosquitto on Debian) before it reads them and writes data/; run \`chown -R mosquitto: ${to}\``);
  });

  it("a rewrite keeps each replaced file's own owner, group and mode, also where they differ from the directory's", async () => {
    const to = path.join(dir, 'mixed-owners');
    const admin = ['--password-file', `${home}/.config/edgeforge/broker-admin`];
    let r = await runCli(['status', 'broker-config', '-i', inv, '--keys', keys, '--to', to, ...admin]);
    expect(r.code, r.stderr).toBe(0);
    // an installation made by hand or by older instructions: each file its own owner and mode
    const own = {
      passwd: { uid: brokerUser()!.uid, gid: brokerUser()!.gid, mode: 0o640 },
      acl: { uid: 4242, gid: 4343, mode: 0o604 },
      'mosquitto.conf': { uid: 0, gid: brokerUser()!.gid, mode: 0o644 },
    };
    const inode = new Map<string, number>();
    for (const [name, o] of Object.entries(own)) {
      const f = path.join(to, name);
      chownSync(f, o.uid, o.gid);
      chmodSync(f, o.mode);
      inode.set(name, statSync(f).ino);
    }
    r = await runCli(['status', 'broker-config', '-i', inv, '--keys', keys, '--to', to]);
    expect(r.code, r.stderr).toBe(0);
    for (const [name, o] of Object.entries(own)) {
      const st = statSync(path.join(to, name));
      expect(st.ino, `${name} was replaced`).not.toBe(inode.get(name));
      expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, name).toEqual(o);
    }
  });
});
