// The real thing end to end: `edgeforge build` of a device of the example fleet (signed manifest), then
// provision delivers that bundle to a real sshd endpoint and runs the real first-boot program there
// (dash, in the endpoint's own root via EDGEFORGE_ROOT; system-changing commands recorded by EDGEFORGE_SYS).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { SSHD_TOOLS, loginUser, startEndpoints, type Fleetlet } from '../../scripts/testkit/sshd.ts';
import { requireTools } from '../../scripts/testkit/tools.ts';
import { EXAMPLE, exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { build } from '../../scripts/pipeline/build/index.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import { provision } from '../../scripts/provision/engine.ts';
import { loadManifest } from '../../scripts/provision/manifest.ts';
import { deviceBundle } from '../../scripts/provision/bundle.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';

const FAKE_INSTALLER = '#!/bin/sh\necho "fake k3s installer: $INSTALL_K3S_EXEC"\n';
const EPOCH = 1767225600;
const run = describe.runIf(requireTools(SSHD_TOOLS, 'SSH provisioning against real sshd endpoints'));

// records each system-changing call in the device root; emulates what later steps read back
const stub = (installer: string) => `#!/bin/sh
printf '%s\\n' "$*" >>"$EDGEFORGE_ROOT/sys.log"
case "$1" in
  useradd) for a; do u=$a; done; echo "$u:x:1000:1000::/home/$u:/bin/bash" >>"$EDGEFORGE_ROOT/etc/passwd" ;;
  passwd) for a; do u=$a; done; echo "$u:!:19000::::::" >>"$EDGEFORGE_ROOT/etc/shadow" ;;
  curl) while [ $# -gt 0 ]; do if [ "$1" = -o ]; then printf '%s' '${installer.replace(/'/g, `'\\''`)}' >"$2"; fi; shift; done ;;
esac
exit 0
`;

run('provision of a real build (example fleet) with the real first-boot program', () => {
  let f: Fleetlet;
  let tmp: string;
  let fleet: Fleet;
  let id: string;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'ef-prov-real-'));
    fleet = structuredClone(await exampleFleet());
    if (fleet.k3s.install.mode === 'online') fleet.k3s.install.installScriptSha256 = sha256Hex(FAKE_INSTALLER);
    const d = fleet.active.find((x) => x.cluster.kind === 'single-node')!;
    id = d.id;
    d.encryption = { ...d.encryption, mode: 'none' };
    f = await startEndpoints(1, { names: [id], dir: path.join(tmp, 'sshd'), env: { EDGEFORGE_SYS: path.join(tmp, 'sshd', 'stub.sh') } });
    writeFileSync(path.join(tmp, 'sshd', 'stub.sh'), stub(FAKE_INSTALLER));
    chmodSync(path.join(tmp, 'sshd', 'stub.sh'), 0o755);
    const ep = f.endpoints[0];
    const w = (p: string, t: string) => (mkdirSync(path.dirname(ep.file(p)), { recursive: true }), writeFileSync(ep.file(p), t));
    w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
    w('etc/shadow', 'root:$6$hash:19000::::::\n');
    w('etc/hosts', '127.0.0.1\tlocalhost\n127.0.1.1\tubuntu\n');
    w('boot/firmware/cmdline.txt', 'console=serial0,115200 root=LABEL=writable rootwait\n');
    // the device's SSH endpoint in the inventory: this sshd, pinned
    d.ssh = { host: '127.0.0.1', port: ep.port, user: loginUser(), identityFile: f.clientKey, hostKey: ep.hostKeyPublic };
  }, 60_000);

  afterAll(async () => {
    await f?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('builds, checks the signature, delivers, applies, verifies; a rerun skips', async () => {
    const out = path.join(tmp, 'out');
    const keys = path.join(tmp, 'keys');
    const key = (await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'test build key' }], date: new Date(EPOCH * 1000 - 1000), format: 'object' })).privateKey;
    const fpr = key.getFingerprint().toUpperCase();
    const secrets: SecretsSource = {
      async secretsFor(devices) {
        return new Map(devices.map((x) => [x.id, fixedSecretsFor(x)]));
      },
      async sign(data, epoch) {
        const signature = await openpgp.sign({ message: await openpgp.createMessage({ binary: data }), signingKeys: key, detached: true, format: 'armored', date: new Date(epoch * 1000) });
        return { signature, publicKey: key.toPublic().armor(), fingerprint: fpr };
      },
      async close() {},
    };
    const b = await build({ fleet, inventoryPath: EXAMPLE, outDir: out, sourceDateEpoch: EPOCH, only: [id], concurrency: 1, reporter: new JsonReporter(), secrets });
    expect(b.results.find((r) => r.id === id)?.status).toBe('ok');
    // provision trusts the build only through the build key pinned in keys/
    mkdirSync(path.join(keys, 'build'), { recursive: true });
    writeFileSync(path.join(keys, 'build', 'signing-key.fingerprint'), fpr + '\n');
    const { manifest, signed } = await loadManifest(out, keys);
    expect(signed).toBe(true);
    const md = manifest.devices.find((x) => x.id === id)!;
    const bundle = deviceBundle(md);
    // the build's own SHA256SUMS is the bundle provision computes
    expect(sha256Hex(readFileSync(path.join(out, 'devices', id, 'bundle', 'SHA256SUMS')))).toBe(bundle.hash);

    const opts = { fleet, manifest, outDir: out, keysDir: keys, baseDir: tmp, only: [id], reporter: new JsonReporter(), retries: 0, env: { ...process.env, SSH_AUTH_SOCK: '' } };
    const r = await provision(opts);
    if (r[0].status !== 'ok') console.error(readFileSync(path.join(out, 'logs/provision', `${id}.log`), 'utf8'));
    expect(r[0]).toMatchObject({ id, status: 'ok', phase: 'verify' });
    const ep = f.endpoints[0];
    const applied = JSON.parse(readFileSync(ep.file('var/lib/edgeforge/applied.json'), 'utf8'));
    expect(applied).toMatchObject({ format: 'edgeforge-applied/1', device: id, bundleSha256: bundle.hash });
    expect(applied.steps).toContain('k3s');
    expect(statSync(ep.file('etc/rancher/k3s/config.yaml')).mode & 0o777).toBe(0o600);
    expect(readFileSync(ep.file('sys.log'), 'utf8')).toMatch(/INSTALL_K3S_VERSION=/);
    // one-time secrets erased from the delivered bundle, the record kept
    expect(existsSync(ep.file('var/lib/edgeforge/bundle/secrets/k3s-token'))).toBe(false);
    const log = readFileSync(path.join(out, 'logs/provision', `${id}.log`), 'utf8');
    expect(log).toMatch(/edgeforge-firstboot\[k3s\]/);
    expect(log).not.toMatch(/PRIVATE KEY/);

    const again = await provision(opts);
    expect(again[0]).toMatchObject({ status: 'skipped', phase: 'preflight' });
  }, 60_000);
});
