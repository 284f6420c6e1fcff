// A fleet of real sshd endpoints with faults: one killed during upload, one with the wrong host key, one
// that hangs (never answers), one slow link, one refused connection, one with no pin. The others finish,
// every failure is reported with its phase, and a rerun converges.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Endpoint, SSHD_TOOLS, SlowProxy, freePort, startEndpoints, type Fleetlet } from '../../scripts/testkit/sshd.ts';
import { requireTools } from '../../scripts/testkit/tools.ts';
import { inventoryYaml, writeFakeBuild, type DeviceSsh } from '../../scripts/testkit/fake-build.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { provision } from '../../scripts/provision/engine.ts';
import { deviceBundle } from '../../scripts/provision/bundle.ts';
import type { Manifest } from '../../scripts/manifest/types.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { generateSshKeyPair, sshFingerprint } from '../../scripts/keys/ssh.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { ProvisionOptions } from '../../scripts/provision/context.ts';

const run = describe.runIf(requireTools(SSHD_TOOLS, 'SSH provisioning against real sshd endpoints'));

run('provision against real sshd endpoints with faults', () => {
  let f: Fleetlet;
  let tmp: string;
  let out: string;
  let keys: string;
  let fleet: Fleet;
  let manifest: Manifest;
  const ep = new Map<string, Endpoint>();
  let slow: SlowProxy;
  let hang: net.Server;
  let hangPort: number;
  let late: Endpoint; // the refused one: nothing listens until the rerun
  const wrongPin = generateSshKeyPair('not-the-device');
  const OK = ['ok-1', 'ok-2', 'ok-3'];

  const opts = (extra: Partial<ProvisionOptions> = {}): ProvisionOptions => ({
    fleet,
    manifest,
    outDir: out,
    keysDir: keys,
    baseDir: tmp,
    reporter: new JsonReporter(),
    retries: 1,
    backoffMs: 100,
    timeouts: { connect: 5000 },
    ...extra,
  });

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'ef-prov-faults-'));
    out = path.join(tmp, 'out');
    keys = path.join(tmp, 'keys');
    f = await startEndpoints(6, { names: [...OK, 'killed', 'wrongkey', 'slow'], dir: path.join(tmp, 'sshd') });
    for (const e of f.endpoints) ep.set(e.name, e);
    late = new Endpoint('refused', path.join(tmp, 'sshd', 'refused'), await freePort(), f.clientPublic + '\n');
    slow = new SlowProxy(await freePort(), ep.get('slow')!.port, 15);
    await slow.start();
    // a device that accepts TCP and then never says a word (hung kernel, black-holed route)
    hang = net.createServer(() => {});
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
    hangPort = (hang.address() as net.AddressInfo).port;
    const nohost = f.endpoints[0]; // any endpoint; the device "hang" is never reached
    const devs: DeviceSsh[] = [
      ...OK.map((id) => ({ id, host: '127.0.0.1', port: ep.get(id)!.port, identityFile: f.clientKey, hostKey: ep.get(id)!.hostKeyPublic })),
      { id: 'killed', host: '127.0.0.1', port: ep.get('killed')!.port, identityFile: f.clientKey, hostKey: ep.get('killed')!.hostKeyPublic },
      { id: 'wrongkey', host: '127.0.0.1', port: ep.get('wrongkey')!.port, identityFile: f.clientKey, hostKey: wrongPin.publicKey },
      { id: 'slow', host: '127.0.0.1', port: slow.port, identityFile: f.clientKey, hostKey: ep.get('slow')!.hostKeyPublic },
      { id: 'hang', host: '127.0.0.1', port: hangPort, identityFile: f.clientKey, hostKey: nohost.hostKeyPublic },
      { id: 'refused', host: '127.0.0.1', port: late.port, identityFile: f.clientKey, hostKey: late.hostKeyPublic },
      { id: 'nopin', host: '127.0.0.1', port: ep.get('ok-1')!.port, identityFile: f.clientKey },
    ];
    writeFileSync(path.join(tmp, 'fleet.yaml'), inventoryYaml(devs));
    fleet = await loadInventoryFile(path.join(tmp, 'fleet.yaml'));
    manifest = writeFakeBuild(
      out,
      devs.map((d) => d.id),
      { payload: { killed: 6 * 1024 * 1024 } },
    );
  }, 60_000);

  afterAll(async () => {
    await slow?.stop();
    hang?.close();
    await late?.stop();
    await f?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('finishes the healthy devices and reports each failure with its phase; a rerun converges', async () => {
    const t0 = Date.now();
    let killedAt = -1;
    const first = await provision(
      opts({
        only: [...OK, 'killed', 'wrongkey', 'slow', 'hang', 'refused', 'nopin'],
        hooks: {
          onUploadProgress: (id, done) => {
            if (id === 'killed' && killedAt < 0) {
              killedAt = done;
              ep.get('killed')!.kill();
            }
          },
        },
      }),
    );
    const by = new Map(first.map((r) => [r.id, r]));
    for (const id of [...OK, 'slow']) expect(by.get(id), id).toMatchObject({ status: 'ok', phase: 'verify' });
    expect(killedAt).toBeGreaterThan(0);
    expect(by.get('killed')).toMatchObject({ status: 'failed', phase: 'upload' });
    expect(by.get('killed')!.message).toMatch(/2 attempts/);
    // the host-key refusal shows both fingerprints and is never retried
    const wk = by.get('wrongkey')!;
    expect(wk).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(wk.message).toContain('HOST KEY MISMATCH');
    expect(wk.message).toContain(wrongPin.fingerprint);
    const realFp = sshFingerprint(ep.get('wrongkey')!.hostKeyPublic);
    expect(wk.message).toContain(realFp);
    expect(wk.message).not.toMatch(/attempts/);
    expect(readFileSync(path.join(out, 'logs/provision/wrongkey.log'), 'utf8')).not.toMatch(/retry/);
    expect(by.get('hang')).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(by.get('hang')!.message).toMatch(/Timed out|timed out/);
    expect(by.get('refused')).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(by.get('refused')!.message).toMatch(/refused.*2 attempts/);
    expect(by.get('nopin')).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(by.get('nopin')!.message).toMatch(/no pinned host key.*SHA256:.*--trust-new-host-keys/);

    // the healthy devices really got their bundle, in their own roots
    for (const id of OK) {
      const root = ep.get(id)!.root;
      expect(readFileSync(path.join(root, 'etc/edgeforge/device.conf'), 'utf8')).toBe(`device=${id}\ngeneration=1\n`);
      expect(statSync(path.join(root, 'etc/edgeforge/token')).mode & 0o777).toBe(0o600);
      const applied = JSON.parse(readFileSync(path.join(root, 'var/lib/edgeforge/applied.json'), 'utf8'));
      expect(applied.bundleSha256).toBe(deviceBundle(manifest.devices.find((d) => d.id === id)!).hash);
      expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle/SHA256SUMS'))).toBe(true);
      expect(existsSync(path.join(root, 'var/lib/edgeforge/bundle/secrets/token'))).toBe(false); // erased after use
      expect(readdirSync(path.join(root, 'var/tmp')).filter((n) => n.startsWith('edgeforge-bundle-'))).toEqual([]);
      const log = readFileSync(path.join(out, 'logs/provision', `${id}.log`), 'utf8');
      expect(log).toContain('edgeforge-firstboot[files]: wrote /etc/edgeforge/device.conf');
      expect(log).not.toContain('K10-secret-token');
      expect(statSync(path.join(out, 'logs/provision', `${id}.log`)).mode & 0o777).toBe(0o600);
    }
    // nothing secret in any result
    expect(JSON.stringify(first)).not.toMatch(/K10-secret-token|PRIVATE KEY/);
    // the killed device left a partial staging directory behind, nothing applied
    expect(existsSync(path.join(ep.get('killed')!.root, 'var/lib/edgeforge/applied.json'))).toBe(false);

    // rerun: the killed device is back, the hung one answers, the refused one is up; the rest is skipped
    await ep.get('killed')!.start();
    await late.start();
    hang.close();
    const fixed = new SlowProxy(hangPort, ep.get('ok-2')!.port, 0);
    await fixed.start();
    try {
      const second = await provision(opts({ only: [...OK, 'killed', 'wrongkey', 'slow', 'refused'] }));
      const by2 = new Map(second.map((r) => [r.id, r]));
      for (const id of [...OK, 'slow']) expect(by2.get(id), id).toMatchObject({ status: 'skipped', phase: 'preflight' });
      for (const id of ['killed', 'refused']) expect(by2.get(id), id).toMatchObject({ status: 'ok', phase: 'verify' });
      expect(by2.get('wrongkey')).toMatchObject({ status: 'failed', phase: 'connect' });
      expect(readdirSync(path.join(ep.get('killed')!.root, 'var/tmp')).filter((n) => n.startsWith('edgeforge-bundle-'))).toEqual([]);
      expect(readFileSync(path.join(ep.get('killed')!.root, 'var/lib/edgeforge/bundle/payload/blob.bin')).length).toBe(6 * 1024 * 1024);
      // the first-boot program ran exactly once on each healthy device
      expect(readFileSync(path.join(ep.get('ok-1')!.root, 'var/lib/edgeforge/runs'), 'utf8')).toBe('run\n');
    } finally {
      await fixed.stop();
    }

    // an explicit opt-in records the unpinned key; from then on it is pinned
    const trusted = await provision(opts({ only: ['nopin'], trustNewHostKeys: true, force: true }));
    expect(trusted[0]).toMatchObject({ id: 'nopin', status: 'ok' });
    const kh = readFileSync(path.join(keys, 'known_hosts', 'nopin'), 'utf8');
    expect(kh).toContain(`[127.0.0.1]:${ep.get('ok-1')!.port} ${ep.get('ok-1')!.hostKeyPublic.split(' ').slice(0, 2).join(' ')}`);
    const again = await provision(opts({ only: ['nopin'] }));
    expect(again[0]).toMatchObject({ status: 'skipped' });
    // a trusted-new run still refuses a mismatch
    const stillRefused = await provision(opts({ only: ['wrongkey'], trustNewHostKeys: true }));
    expect(stillRefused[0]).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(existsSync(path.join(keys, 'known_hosts', 'wrongkey'))).toBe(false);
    expect(Date.now() - t0).toBeLessThan(45_000);
  }, 60_000);

  it('a new build is applied again; the device converges to it', async () => {
    const m2 = writeFakeBuild(out, ['ok-3'], { generation: 2 });
    const r = await provision(opts({ manifest: m2, only: ['ok-3'] }));
    expect(r[0]).toMatchObject({ status: 'ok', phase: 'verify' });
    const root = ep.get('ok-3')!.root;
    expect(readFileSync(path.join(root, 'etc/edgeforge/device.conf'), 'utf8')).toContain('generation=2');
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/runs'), 'utf8')).toBe('run\nrun\n');
  }, 30_000);
});
