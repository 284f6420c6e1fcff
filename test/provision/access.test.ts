// Real networks: a site gateway (jump host), an SSH agent, sudo with a password; the read-only dry run;
// preflight and first-boot failures; the CLI's --json document and exit codes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, statfsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Endpoint, SSHD_TOOLS, createSudoUser, loginUser, freePort, startEndpoints, type Fleetlet } from '../../scripts/testkit/sshd.ts';
import { requireRoot, requireTools, tool } from '../../scripts/testkit/tools.ts';
import { inventoryYaml, writeFakeBuild, type DeviceSsh } from '../../scripts/testkit/fake-build.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { provision } from '../../scripts/provision/engine.ts';
import type { Manifest } from '../../scripts/manifest/types.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { ProvisionOptions } from '../../scripts/provision/context.ts';
import { runCli } from '../helpers.ts';

const run = describe.runIf(requireTools([...SSHD_TOOLS, 'ssh-agent', 'ssh-add'], 'SSH provisioning against real sshd endpoints'));
// sudo with a password needs a second user with a password and a sudoers entry: only root can create them
const asRoot = requireRoot('provision: sudo with a password (creates a user and a sudoers entry)') && requireTools(['useradd', 'chpasswd', 'userdel', 'sudo'], 'provision: sudo with a password');
// per process: two runs at once (two checkouts on one machine) must not share, or fail to create, the user
const SUDO_USER = `efprov${process.pid}`;
const SUDO_PW = 'correct horse battery staple';

run('provision: gateways, agents, sudo, dry run, failures, CLI', () => {
  let f: Fleetlet;
  let gw: Endpoint;
  let nostatvfs: Endpoint;
  let nosftp: Endpoint;
  let tmp: string;
  let out: string;
  let keys: string;
  let fleet: Fleet;
  let manifest: Manifest;
  let agent: ChildProcess | undefined;
  let agentSock = '';
  let dropUser: (() => void) | undefined;
  const e = new Map<string, Endpoint>();
  const NAMES = ['viagw', 'viaagent', 'sudopw', 'dry', 'full', 'nowg', 'failing', 'norecord', 'cli-a', 'cli-b'];

  const opts = (extra: Partial<ProvisionOptions> = {}): ProvisionOptions => ({
    fleet,
    manifest,
    outDir: out,
    keysDir: keys,
    baseDir: tmp,
    reporter: new JsonReporter(),
    retries: 0,
    timeouts: { connect: 10_000 },
    env: { ...process.env, SSH_AUTH_SOCK: '' },
    ...extra,
  });

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'ef-prov-access-'));
    out = path.join(tmp, 'out');
    keys = path.join(tmp, 'keys');
    f = await startEndpoints(NAMES.length, { names: NAMES, dir: path.join(tmp, 'sshd') });
    for (const x of f.endpoints) e.set(x.name, x);
    // the site gateway: forwarding allowed, verbose enough to show the forwarded channels
    gw = new Endpoint('gateway', path.join(tmp, 'sshd', 'gateway'), await freePort(), f.clientPublic + '\n', { extraConfig: ['AllowTcpForwarding yes'], logLevel: 'DEBUG1' });
    await gw.start();
    // a device whose SFTP server refuses statvfs@openssh.com: free space comes from df there
    nostatvfs = new Endpoint('nostatvfs', path.join(tmp, 'sshd', 'nostatvfs'), await freePort(), f.clientPublic + '\n', { sftpArgs: '-P statvfs,fstatvfs' });
    await nostatvfs.start();
    // a device whose sshd has no SFTP subsystem and whose kernel has no WireGuard: both reported at once
    nosftp = new Endpoint('nosftp', path.join(tmp, 'sshd', 'nosftp'), await freePort(), f.clientPublic + '\n', { noSftp: true, wireguard: false });
    await nosftp.start();
    // "nowg": a kernel without WireGuard
    rmSync(e.get('nowg')!.file('sys'), { recursive: true, force: true });
    // "failing": the first-boot program stops with its own message
    writeFileSync(e.get('failing')!.file('fail-apply'), 'the clock says 1970: let NTP sync, then run again');
    // "norecord": the first-boot program exits 0 but leaves an empty applied.json
    writeFileSync(e.get('norecord')!.file('empty-record'), '');
    // an agent holding the client key
    agentSock = path.join(tmp, 'agent.sock');
    agent = spawn(tool('ssh-agent'), ['-D', '-a', agentSock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync(tool('ssh-add'), [f.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
    // a user who needs a password for sudo (this needs root; CI runs as root)
    if (asRoot) dropUser = createSudoUser(SUDO_USER, SUDO_PW);
    // sshd reads authorized_keys as that user: it must be able to reach the endpoint's directory
    for (const d of [tmp, path.join(tmp, 'sshd')]) chmodSync(d, 0o755);

    const base = (id: string): DeviceSsh => ({ id, host: '127.0.0.1', port: e.get(id)!.port, identityFile: f.clientKey, hostKey: e.get(id)!.hostKeyPublic });
    const devs: DeviceSsh[] = [
      { ...base('viagw'), jumpHost: `${loginUser()}@127.0.0.1:${gw.port}` },
      { ...base('viaagent'), identityFile: undefined },
      { ...base('sudopw'), user: SUDO_USER, sudoPasswordEnv: 'EF_TEST_SUDO_PASSWORD' },
      base('dry'),
      base('full'),
      { id: 'nostatvfs', host: '127.0.0.1', port: nostatvfs.port, identityFile: f.clientKey, hostKey: nostatvfs.hostKeyPublic },
      { id: 'nosftp', host: '127.0.0.1', port: nosftp.port, identityFile: f.clientKey, hostKey: nosftp.hostKeyPublic },
      base('nowg'),
      base('failing'),
      base('norecord'),
      base('cli-a'),
      { ...base('cli-b'), port: await freePort() }, // nothing listens
    ];
    writeFileSync(path.join(tmp, 'fleet.yaml'), inventoryYaml(devs));
    fleet = await loadInventoryFile(path.join(tmp, 'fleet.yaml'));
    manifest = writeFakeBuild(
      out,
      devs.map((d) => d.id),
    );
  }, 60_000);

  afterAll(async () => {
    dropUser?.();
    if (agent?.pid) process.kill(agent.pid);
    await gw?.stop();
    await nostatvfs?.stop();
    await nosftp?.stop();
    await f?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('goes through a site gateway (forwarded channel) whose host key is recorded on explicit opt-in', async () => {
    const refused = await provision(opts({ only: ['viagw'] }));
    expect(refused[0]).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(refused[0].message).toMatch(/gateway.*no pinned host key/);
    const r = await provision(opts({ only: ['viagw'], trustNewHostKeys: true }));
    expect(r[0]).toMatchObject({ status: 'ok', phase: 'verify' });
    expect(readFileSync(path.join(keys, 'known_hosts', `gateway-127.0.0.1_${gw.port}`), 'utf8')).toContain(gw.hostKeyPublic.split(' ')[1]);
    // the gateway's own log shows the device's port being opened through it
    expect(gw.stderr).toMatch(new RegExp(`direct-tcpip.*127\\.0\\.0\\.1 port ${e.get('viagw')!.port}|target 127\\.0\\.0\\.1 port ${e.get('viagw')!.port}`));
    expect(existsSync(e.get('viagw')!.file('var/lib/edgeforge/applied.json'))).toBe(true);
  }, 40_000);

  it('authenticates with an agent (SSH_AUTH_SOCK) when no identityFile is given', async () => {
    const r = await provision(opts({ only: ['viaagent'], env: { ...process.env, SSH_AUTH_SOCK: agentSock, HOME: tmp } }));
    expect(r[0]).toMatchObject({ status: 'ok', phase: 'verify' });
    const none = await provision(opts({ only: ['viaagent'], force: true, env: { ...process.env, SSH_AUTH_SOCK: '', HOME: tmp } }));
    expect(none[0]).toMatchObject({ status: 'failed', phase: 'connect' });
    expect(none[0].message).toMatch(/no SSH credentials/);
  }, 40_000);

  it.runIf(asRoot)(
    'uses sudo with a password from the environment, never showing it; a wrong one fails in preflight',
    async () => {
      const missing = await provision(opts({ only: ['sudopw'] }));
      expect(missing[0]).toMatchObject({ status: 'failed', phase: 'preflight' });
      expect(missing[0].message).toMatch(/EF_TEST_SUDO_PASSWORD is not set/);
      const wrong = await provision(opts({ only: ['sudopw'], env: { ...process.env, SSH_AUTH_SOCK: '', EF_TEST_SUDO_PASSWORD: 'nope' } }));
      expect(wrong[0]).toMatchObject({ status: 'failed', phase: 'preflight' });
      expect(wrong[0].message).toMatch(/sudo refused the password from EF_TEST_SUDO_PASSWORD/);
      const ok = await provision(opts({ only: ['sudopw'], env: { ...process.env, SSH_AUTH_SOCK: '', EF_TEST_SUDO_PASSWORD: SUDO_PW } }));
      expect(ok[0]).toMatchObject({ status: 'ok', phase: 'verify' });
      const root = e.get('sudopw')!.root;
      // the record sits in a root-only directory: the non-root user read it through sudo
      expect(readFileSync(path.join(root, 'etc/edgeforge/device.conf'), 'utf8')).toContain('device=sudopw');
      const again = await provision(opts({ only: ['sudopw'], env: { ...process.env, SSH_AUTH_SOCK: '', EF_TEST_SUDO_PASSWORD: SUDO_PW } }));
      expect(again[0]).toMatchObject({ status: 'skipped', phase: 'preflight' });
      const log = readFileSync(path.join(out, 'logs/provision/sudopw.log'), 'utf8');
      expect(log).not.toContain(SUDO_PW);
      expect(JSON.stringify([wrong, ok, again])).not.toContain(SUDO_PW);
    },
    60_000,
  );

  it('--dry-run reads only and says what it would do', async () => {
    const r = await provision(opts({ only: ['dry'], dryRun: true }));
    expect(r[0]).toMatchObject({ id: 'dry', status: 'ok', phase: 'preflight' });
    expect(r[0].message).toMatch(/^dry run: would upload 3 file\(s\) .* and apply bundle [0-9a-f]{12}; device aarch64, .* applied now: none/);
    const root = e.get('dry')!.root;
    expect(existsSync(path.join(root, 'var/lib/edgeforge'))).toBe(false);
    expect(readdirSync(path.join(root, 'var/tmp'))).toEqual([]);
  }, 30_000);

  /** what df would say is available on dir, in MiB */
  const availMiB = (dir: string) => {
    const st = statfsSync(dir);
    return (st.bavail * st.bsize) / 2 ** 20;
  };

  it('measures free space over SFTP (statvfs), with df where the server refuses it; too little stops in preflight', async () => {
    const r = await provision(opts({ only: ['dry', 'nostatvfs'], dryRun: true }));
    for (const x of r) {
      expect(x, x.id).toMatchObject({ status: 'ok', phase: 'preflight' });
      const mib = Number(/ (\d+) MiB free/.exec(x.message)?.[1]);
      // the same file system as the test's own temp dir; other tests write to it meanwhile
      expect(Math.abs(mib - availMiB(tmp)), x.id).toBeLessThan(256);
    }
    expect(readFileSync(path.join(out, 'logs/provision/dry.log'), 'utf8')).not.toContain('asking df');
    expect(readFileSync(path.join(out, 'logs/provision/nostatvfs.log'), 'utf8')).toContain('does not answer statvfs@openssh.com: asking df');

    // a bundle bigger than the device's disk: refused before anything is written
    const big = structuredClone(manifest);
    const dev = big.devices.find((d) => d.id === 'full')!;
    dev.artifacts.find((a) => a.kind === 'k3s-config')!.bytes = 2 ** 50;
    const [full] = await provision(opts({ only: ['full'], manifest: big }));
    expect(full).toMatchObject({ status: 'failed', phase: 'preflight' });
    expect(full.message).toMatch(/only \d+ MiB free in .*\/var\/tmp; the bundle needs about \d+ MiB/);
    expect(existsSync(e.get('full')!.file('var/lib/edgeforge'))).toBe(false);
    expect(readdirSync(e.get('full')!.file('var/tmp'))).toEqual([]);
  }, 30_000);

  it('stops in preflight without WireGuard and in apply when the first-boot program fails, neither retried', async () => {
    const r = await provision(opts({ only: ['nowg', 'failing'], retries: 3, backoffMs: 5000 }));
    const by = new Map(r.map((x) => [x.id, x]));
    expect(by.get('nowg')).toMatchObject({ status: 'failed', phase: 'preflight' });
    expect(by.get('nowg')!.message).toMatch(/no WireGuard module/);
    expect(readdirSync(e.get('nowg')!.file('var/tmp'))).toEqual([]); // nothing uploaded
    expect(by.get('failing')).toMatchObject({ status: 'failed', phase: 'apply' });
    expect(by.get('failing')!.message).toMatch(/FAILED: the clock says 1970: let NTP sync, then run again/);
    expect(by.get('failing')!.message).not.toMatch(/attempts/);
  }, 60_000);

  it('an sshd without SFTP is a permanent failure that says so, reported with every other preflight problem', async () => {
    const [r] = await provision(opts({ only: ['nosftp'], retries: 3, backoffMs: 5000 }));
    expect(r).toMatchObject({ status: 'failed', phase: 'preflight' });
    expect(r.message).toMatch(/no WireGuard module/);
    expect(r.message).toMatch(/sshd has no SFTP subsystem .*Subsystem sftp internal-sftp/);
    expect(r.message).not.toMatch(/attempts/); // not retried
    expect(readdirSync(nosftp.file('var/tmp'))).toEqual([]); // nothing uploaded
  }, 60_000);

  it('fails verify when the first-boot program exits 0 without recording the bundle', async () => {
    const [r] = await provision(opts({ only: ['norecord'] }));
    expect(r).toMatchObject({ status: 'failed', phase: 'verify' });
    expect(r.message).toMatch(/applied\.json records bundle \(none\), but this build's bundle is [0-9a-f]{64}/);
  }, 30_000);

  it('CLI: --json per SPEC, exit 1 when a device failed, 2 for an unknown device or an unsigned build', async () => {
    const inv = path.join(tmp, 'fleet.yaml');
    const env = { SSH_AUTH_SOCK: '' };
    const r = await runCli(['provision', '-i', inv, '-o', out, '--keys', keys, '--json', '--allow-unsigned', '--only', 'cli-a,cli-b', '--retries', '0'], { env });
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toEqual({
      devices: [
        { id: 'cli-a', status: 'ok', phase: 'verify', message: expect.stringMatching(/^applied bundle/) },
        { id: 'cli-b', status: 'failed', phase: 'connect', message: expect.stringMatching(/connection refused/) },
      ],
    });
    expect(r.stdout).not.toMatch(/K10-secret-token/);
    const again = await runCli(['provision', '-i', inv, '-o', out, '--keys', keys, '--allow-unsigned', '--only', 'cli-a'], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/cli-a: skipped in preflight — already at bundle/);
    expect(again.stderr).toMatch(/0 ok, 0 failed, 1 skipped/);
    const bad = await runCli(['provision', '-i', inv, '-o', out, '--keys', keys, '--allow-unsigned', '--only', 'cli-c'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no device "cli-c"/);
    const unsigned = await runCli(['provision', '-i', inv, '-o', out, '--keys', keys, '--only', 'cli-a'], { env });
    expect(unsigned.code).toBe(2);
    expect(unsigned.stderr).toMatch(/unsigned/);
    const badTimeout = await runCli(['provision', '-i', inv, '-o', out, '--timeout', 'upload=soon'], { env });
    expect(badTimeout.code).toBe(2);
  }, 40_000);

  it('CLI: a full run lists the devices it cannot reach (SSH closed) with their reason; exit 1 when nothing was delivered', async () => {
    const env = { SSH_AUTH_SOCK: '' };
    const base = (id: string): DeviceSsh => ({ id, host: '127.0.0.1', port: e.get(id)!.port, identityFile: f.clientKey, hostKey: e.get(id)!.hostKeyPublic });
    // SSH opened only on the devices that listen; the other two have it closed (no managementSubnet at the site)
    const mixed = (open: DeviceSsh[]) => {
      const yaml = inventoryYaml([...open, { id: 'shut-1', host: '127.0.0.1', port: 1 }, { id: 'shut-2', host: '127.0.0.1', port: 2 }]).replace(/, allowFrom: any \}.*$/m, ' }');
      const file = path.join(tmp, `mixed-${open.map((d) => d.id).join('-')}.yaml`);
      const lines = yaml.split('\n').map((l) => (open.some((d) => l.includes(`{ id: ${d.id}, `)) ? l.replace('ssh: { ', 'ssh: { allowFrom: any, ') : l));
      writeFileSync(file, lines.join('\n'));
      return file;
    };
    const shut = (id: string) => ({ id, status: 'skipped', phase: 'select', message: expect.stringMatching(new RegExp(`^SSH is closed on ${id}: site test-region/lab has no managementSubnet`)) });
    // cli-a is already at the build's bundle (the test above): done, so the run is done — the closed ones are listed
    const done = await runCli(['provision', '-i', mixed([base('cli-a')]), '-o', out, '--keys', keys, '--json', '--allow-unsigned', '--retries', '0'], { env });
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout).devices).toEqual([{ id: 'cli-a', status: 'skipped', phase: 'preflight', message: expect.stringMatching(/^already at bundle/) }, shut('shut-1'), shut('shut-2')]);
    expect(done.stderr).toMatch(/shut-1: skipped in select — SSH is closed on shut-1/);
    // cli-b does not answer: tried and failed, the rest could not be tried — nothing delivered: exit 1
    const none = await runCli(['provision', '-i', mixed([{ ...base('cli-b'), port: await freePort() }]), '-o', out, '--keys', keys, '--json', '--allow-unsigned', '--retries', '0'], { env });
    expect(none.code, none.stderr).toBe(1);
    expect(JSON.parse(none.stdout).devices).toEqual([{ id: 'cli-b', status: 'failed', phase: 'connect', message: expect.stringMatching(/connection refused/) }, shut('shut-1'), shut('shut-2')]);
  }, 40_000);
});
