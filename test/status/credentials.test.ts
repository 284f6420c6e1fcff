// Per-device broker credentials through the real keystore (OpenPGP, example admin) and the real broker:
// `keys init` creates them, `build` renders each device's own into its bundle, `status broker-config`
// writes the broker side Mosquitto loads, `keys rotate --device` replaces one, `revoke` disables one.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { runCli } from '../helpers.ts';
import { freePort, makeTestCerts, startBroker, type RunningBroker } from '../../scripts/testkit/mosquitto.ts';
import { publishAll, simReport } from '../../scripts/testkit/status-reports.ts';
import { deviceTopic } from '../../scripts/inventory/fleet-status.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { verifyMosquittoHash } from '../../scripts/keys/mosquitto-passwd.ts';
import { readStatusCredential } from '../../scripts/keys/status-credentials.ts';
import { asBrokerUser, openToBroker } from './env.ts';

const HAVE = requireTools(['mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'openssl'], 'test/status/credentials.test.ts');
const ADMIN = 'admin-pw-for-credentials-test';

describe.runIf(HAVE)('broker credentials: keys, build, broker-config, rotate, revoke', () => {
  let dir: string;
  let inv: string;
  let keys: string;
  let certs: { ca: string; cert: string; key: string };
  let port: number;
  let broker: RunningBroker | undefined;
  const env = { EDGEFORGE_STATUS_PASSWORD: ADMIN, SOURCE_DATE_EPOCH: '1767225600' };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ef-cred-'));
    inv = path.join(dir, 'fleet.yaml');
    keys = path.join(dir, 'keys');
    copyFileSync('inventory/example.yaml', inv);
    certs = makeTestCerts(path.join(dir, 'certs'));
    copyFileSync(certs.ca, path.join(dir, 'broker-ca.pem'));
    port = await freePort();
    appendFileSync(inv, `\nstatus:\n  broker: mqtts://127.0.0.1:${port}\n  caFile: broker-ca.pem\n  period: 5m\n`);
    // as on Debian (docs/status.md): as root the broker drops to mosquitto, which owns its directory and reads the key
    openToBroker(dir);
    mkdirSync(path.join(dir, 'broker'));
    asBrokerUser(path.join(dir, 'broker'));
    asBrokerUser(path.dirname(certs.ca));
  });
  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function brokerConfig() {
    const r = await runCli(
      [
        'status',
        'broker-config',
        '-i',
        inv,
        '--keys',
        keys,
        '--to',
        path.join(dir, 'broker'),
        '--bind',
        '127.0.0.1',
        '--tls-cafile',
        certs.ca,
        '--tls-certfile',
        certs.cert,
        '--tls-keyfile',
        certs.key,
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning');
    return r;
  }

  it('keys init creates one credential per active device, encrypted to the admins, hash in clear', async () => {
    const r = await runCli(['keys', 'init', '--example-admin', '-i', inv, '--keys', keys, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const fleet = await loadInventoryFile(inv);
    expect(JSON.parse(r.stdout).statusCredentialsCreated).toBe(fleet.active.length);
    const id = fleet.active[0].id;
    const rec = (await readStatusCredential(keys, id))!;
    expect(rec.mosquittoHash).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    const enc = path.join(keys, 'devices', id, 'status-credential-g1.enc.asc');
    expect(statSync(enc).mode & 0o777).toBe(0o600);
    expect(readFileSync(enc, 'utf8')).toMatch(/^-----BEGIN PGP MESSAGE-----/);
  });

  it("build renders each device's own password (matching its hash) into bundle/status, 0600", async () => {
    const fleet = await loadInventoryFile(inv);
    const [a, b] = fleet.active;
    const r = await runCli(['build', '-i', inv, '--keys', keys, '-o', path.join(dir, 'out'), '--only', `${a.id},${b.id}`, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const pw = (id: string) => /^-P (\S+)$/m.exec(readFileSync(path.join(dir, 'out/devices', id, 'bundle/status/mosquitto_pub'), 'utf8'))![1];
    expect(pw(a.id)).not.toBe(pw(b.id));
    expect(verifyMosquittoHash(pw(a.id), (await readStatusCredential(keys, a.id))!.mosquittoHash!)).toBe(true);
    expect(statSync(path.join(dir, 'out/devices', a.id, 'bundle/status/mosquitto_pub')).mode & 0o777).toBe(0o600);
    const conf = readFileSync(path.join(dir, 'out/devices', a.id, 'bundle/status/status.conf'), 'utf8');
    expect(conf).toContain(`EFS_TOPIC='${deviceTopic(fleet.status!, a)}'`);
    expect(conf).toContain("EFS_EXPIRY='600'");
    const manifest = JSON.parse(readFileSync(path.join(dir, 'out/manifest.json'), 'utf8'));
    const art = manifest.devices.find((d: { id: string }) => d.id === a.id).artifacts.find((x: { path: string }) => x.path.endsWith('bundle/status/mosquitto_pub'));
    expect(art.secret).toBe(true);
    expect(r.stdout + r.stderr).not.toContain(pw(a.id));
  });

  it('broker-config: the broker accepts each device with its own password; rotate and revoke take one away', async () => {
    const fleet = await loadInventoryFile(inv);
    const cfg = fleet.status!;
    const ca = readFileSync(certs.ca, 'utf8');
    await brokerConfig();
    expect(statSync(path.join(dir, 'broker/passwd')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, 'broker/passwd'), 'utf8').trim().split('\n')).toHaveLength(fleet.active.length + 1);
    broker = await startBroker(path.join(dir, 'broker/mosquitto.conf'), port);
    const pw = (id: string) => /^-P (\S+)$/m.exec(readFileSync(path.join(dir, 'out/devices', id, 'bundle/status/mosquitto_pub'), 'utf8'))![1];
    const [a, b] = fleet.active;
    const send = (d: typeof a, password: string) =>
      publishAll(cfg.broker.url, ca, [
        {
          id: d.id,
          username: d.id,
          password,
          topic: deviceTopic(cfg, d),
          payload: simReport(d.id, d.siteId, fleet.name, { time: new Date().toISOString().slice(0, 19) + 'Z' }),
          expirySec: cfg.expirySec,
        },
      ]).then((m) => m.get(d.id)!);
    expect((await send(a, pw(a.id))).ok).toBe(true);
    expect((await send(b, pw(b.id))).ok).toBe(true);

    // rotate a: new generation; after broker-config + reload the old password is refused
    const rot = await runCli(['keys', 'rotate', '--device', a.id, '--keys', keys, '--json'], { env });
    expect(rot.code, rot.stderr).toBe(0);
    expect(JSON.parse(rot.stdout).changed.find((c: { what: string }) => c.what === 'broker')).toEqual({ what: 'broker', old: 'status credential g1', new: 'g2' });
    const oldPw = pw(a.id);
    await brokerConfig();
    await broker.reload();
    expect((await send(a, oldPw)).ok).toBe(false);
    // the next build re-renders a (its credential changed) and leaves b alone (nothing of b's changed)
    const rb = await runCli(['build', '-i', inv, '--keys', keys, '-o', path.join(dir, 'out'), '--only', `${a.id},${b.id}`, '--json'], { env });
    expect(rb.code, rb.stderr).toBe(0);
    const st = new Map(JSON.parse(rb.stdout).devices.map((x: { id: string; status: string }) => [x.id, x.status]));
    expect(st.get(a.id)).toBe('ok');
    expect(st.get(b.id)).toBe('skipped');
    expect(pw(a.id)).not.toBe(oldPw);
    expect(verifyMosquittoHash(pw(a.id), (await readStatusCredential(keys, a.id))!.mosquittoHash!)).toBe(true);
    expect((await send(a, pw(a.id))).ok).toBe(true);

    // revoke b: the credential is disabled and the device has no broker user any more
    const rev = await runCli(['revoke', b.id, '--reason', 'stolen', '-i', inv, '--keys', keys], { env });
    expect(rev.code, rev.stderr).toBe(0);
    expect(rev.stderr).toContain(`broker credential of ${b.id} disabled`);
    expect((await readStatusCredential(keys, b.id))!.disabled?.reason).toBe('revoked: stolen');
    const bc = await brokerConfig();
    expect(readFileSync(path.join(dir, 'broker/passwd'), 'utf8')).not.toContain(`${b.id}:`);
    expect(readFileSync(path.join(dir, 'broker/acl'), 'utf8')).not.toContain(`user ${b.id}\n`);
    expect(bc.stdout + bc.stderr).not.toContain(ADMIN);
    await broker.reload();
    const refused = await send(b, pw(b.id));
    expect(refused.ok).toBe(false);
    expect(refused.reason).toMatch(/Not authorized|Bad User Name or Password/i);
    expect(existsSync(path.join(dir, 'broker/data'))).toBe(true);
  });
});
