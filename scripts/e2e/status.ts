// Fleet status in the ARM64 boot test: a real Mosquitto on the host (TLS, certificates made by openssl here,
// SAN 10.0.2.102 — a qemu guestfwd to the host, as boot 1 runs with restrict=on), configured by edgeforge's own
// `status broker-config` after the build made the device's credential; a subscriber on the host keeps every
// status the device sends (retained keeps only the last), so the first-boot milestones can be checked; then
// the reporter's peak memory on the device (its unit's cgroup memory.peak) and `edgeforge status` itself.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, makeTestCerts, mosquittoBinary, startBroker, type RunningBroker } from '../testkit/mosquitto.ts';
import { testConfLines } from '../testkit/status-testbed.ts';
import { readStatus, type StatusReport } from '../fleet-status/report.ts';
import { fleetStatusFilter } from '../inventory/fleet-status.ts';
import { loadInventoryFile } from '../inventory/load.ts';
import { STATUS_PATHS } from '../device/layout.ts';
import { STATUS_REPORTER_MEMORY_MAX_MIB } from '../render/status/limits.ts';
import { STATUS_GUEST_IP } from './fleet.ts';
import { expect, notReached, type Checks } from './checks.ts';
import { sshRun, type SshTarget } from './ssh.ts';

export const STATUS_CHECKS = {
  reached: 'status: the device publishes its status to a broker on the host (TLS, CA pinned, its own credential)',
  milestones: 'status: first-boot milestones arrive (steps running, then done)',
  cli: 'status: edgeforge status shows the device, first boot done, applied bundle = the build',
  memory: "status: the reporter's peak memory on the device (unit cgroup memory.peak)",
} as const;

export const ADMIN_PASSWORD_FILE = 'broker-admin-password';

export interface E2eStatus {
  dir: string;
  port: number;
  broker?: RunningBroker;
  sub?: MqttClient;
  /** every status the host received, in arrival order */
  received: { at: string; retained: boolean; report?: StatusReport; raw: string }[];
}

/** Before the build: certificates, a port, and the inventory's `status:` block pointing at STATUS_GUEST_IP (forwarded to the host). */
export async function prepareStatus(work: string, inventory: string): Promise<E2eStatus> {
  if (!mosquittoBinary()) throw new Error('mosquitto is not installed on the host (Debian package mosquitto): the status checks need it');
  const dir = path.join(work, 'status');
  await fs.rm(dir, { recursive: true, force: true });
  const certs = makeTestCerts(path.join(dir, 'certs'), [`IP:${STATUS_GUEST_IP}`, 'IP:127.0.0.1']);
  const port = await freePort();
  await fs.copyFile(certs.ca, path.join(path.dirname(inventory), 'broker-ca.pem'));
  await fs.appendFile(
    inventory,
    `\n# e2e: fleet status to a Mosquitto on the host (scripts/e2e/status.ts)\nstatus:\n  broker: mqtts://${STATUS_GUEST_IP}:${port}\n  caFile: broker-ca.pem\n  period: 5m\n`,
  );
  await fs.writeFile(path.join(dir, ADMIN_PASSWORD_FILE), 'e2e-broker-admin-' + port + '\n', { mode: 0o600 });
  return { dir, port, received: [] };
}

type Cli = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/** After the build (the device's credential exists): broker-config, start the broker, subscribe. */
export async function startStatusBroker(s: E2eStatus, o: { inventory: string; keys: string; device: string; edgeforge: Cli }): Promise<void> {
  const c = path.join(s.dir, 'certs');
  const bdir = path.join(s.dir, 'broker');
  const r = await o.edgeforge([
    'status',
    'broker-config',
    '-i',
    o.inventory,
    '--keys',
    o.keys,
    '--to',
    bdir,
    '--bind',
    '127.0.0.1',
    '--port',
    String(s.port),
    '--password-file',
    path.join(s.dir, ADMIN_PASSWORD_FILE),
    '--tls-cafile',
    path.join(c, 'ca.pem'),
    '--tls-certfile',
    path.join(c, 'broker.pem'),
    '--tls-keyfile',
    path.join(c, 'broker.key'),
  ]);
  if (r.code !== 0) throw new Error(`edgeforge status broker-config: exit ${r.code}: ${r.stderr.trim()}`);
  await fs.appendFile(path.join(bdir, 'mosquitto.conf'), testConfLines().join('\n') + '\n');
  s.broker = await startBroker(path.join(bdir, 'mosquitto.conf'), s.port);
  const password = (await fs.readFile(path.join(s.dir, ADMIN_PASSWORD_FILE), 'utf8')).trim();
  s.sub = await mqtt.connectAsync(`mqtts://127.0.0.1:${s.port}`, {
    protocolVersion: 5,
    username: (await loadInventoryFile(o.inventory)).status!.adminUser,
    password,
    ca: await fs.readFile(path.join(c, 'ca.pem'), 'utf8'),
    rejectUnauthorized: true,
    reconnectPeriod: 1000,
  });
  s.sub.on('message', (_topic, payload, packet) => {
    const r = readStatus(payload, o.device);
    s.received.push({ at: new Date().toISOString(), retained: packet.retain, report: r.ok ? r.report : undefined, raw: payload.toString('utf8').slice(0, 2000) });
  });
  // exactly the admin user's ACL pattern (a wider filter would be refused by the broker's subscribe check)
  const cfg = (await loadInventoryFile(o.inventory)).status!;
  const granted = await s.sub.subscribeAsync(fleetStatusFilter(cfg));
  if (granted.some((g) => g.qos >= 128)) throw new Error(`the broker refused the admin subscription to ${fleetStatusFilter(cfg)}`);
}

const until = async (sec: number, ok: () => boolean) => {
  const end = Date.now() + sec * 1000;
  while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 1000));
  return ok();
};

/** the broker's last lines about clients and errors, for a check that saw nothing arrive */
const brokerLogTail = (s: E2eStatus) =>
  (s.broker?.log() ?? '')
    .split('\n')
    .filter((l) => /Client|not auth|Socket|error/i.test(l))
    .slice(-5)
    .join(' | ');

/** The named checks, run while the device is up after its first boot (SSH works). */
export async function statusChecks(
  checks: Checks,
  s: E2eStatus | undefined,
  o: { target: SshTarget; running: boolean; inventory: string; out: string; device: string; edgeforge: Cli },
): Promise<void> {
  const mine = () => (s?.received ?? []).filter((m) => m.report);
  await checks.run(STATUS_CHECKS.reached, async () => {
    if (!s?.broker) notReached('no broker on the host (see the fixtures stage)');
    if (!o.running && !mine().length) notReached('the guest is not running');
    // a report that started while the network was still coming up is retried by the timer (OnBootSec=2min)
    await until(240, () => mine().length > 0);
    const bad = s.received.filter((m) => !m.report);
    expect(
      mine().length > 0,
      `no valid status from ${o.device} within 4 minutes (${bad.length} unreadable message(s)${bad[0] ? `: ${bad[0].raw.slice(0, 200)}` : ''}); broker log: ${brokerLogTail(s)}`,
    );
    return `${mine().length} status message(s) from ${o.device}; first at ${mine()[0].at}`;
  });
  await checks.run(STATUS_CHECKS.milestones, async () => {
    if (!mine().length) notReached('no status arrived');
    await until(180, () => mine().some((m) => m.report!.firstboot.state === 'done'));
    const seq = mine().map((m) => `${m.report!.firstboot.step}:${m.report!.firstboot.state}`);
    await fs.writeFile(path.join(s!.dir, 'received.jsonl'), s!.received.map((m) => JSON.stringify(m)).join('\n') + '\n');
    expect(
      seq.some((x) => x.endsWith(':running')),
      `no "running" milestone among ${seq.join(', ')}`,
    );
    expect(seq.includes('end:done'), `no final "done" milestone among ${seq.join(', ')}`);
    return seq.join(' → ');
  });
  await checks.run(STATUS_CHECKS.memory, async () => {
    if (!o.running) notReached('the guest is not running');
    // one more run as the timer makes it (the unit's own cgroup), then the peak it recorded
    const r = await sshRun(
      o.target,
      `sudo -n systemctl start edgeforge-status.service; sudo -n cat ${STATUS_PATHS.workDir}/memory-peak-kib; systemctl show -p MemoryMax -p MemoryPeak -p MemoryCurrent edgeforge-status.service`,
      240,
    );
    const kib = Number(r.stdout.trim().split('\n')[0]);
    expect(Number.isFinite(kib) && kib > 0, `no peak recorded (exit ${r.code}): ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
    expect(kib < STATUS_REPORTER_MEMORY_MAX_MIB * 1024, `peak ${kib} KiB is over MemoryMax ${STATUS_REPORTER_MEMORY_MAX_MIB} MiB`);
    return `peak ${(kib / 1024).toFixed(1)} MiB (MemoryMax ${STATUS_REPORTER_MEMORY_MAX_MIB} MiB); ${r.stdout.trim().split('\n').slice(1).join(' ')}`;
  });
  await checks.run(STATUS_CHECKS.cli, async () => {
    if (!s?.broker) notReached('no broker on the host');
    // the broker ties a client id to its user name (use_username_as_clientid): the host's subscriber, logged in as
    // the same admin user, would take the session from `edgeforge status` and back; the milestones are in by now
    await s.sub?.endAsync(true).catch(() => {});
    s.sub = undefined;
    // the inventory names the broker as the guest sees it (STATUS_GUEST_IP); on the host it is 127.0.0.1
    const r = await o.edgeforge([
      'status',
      '--json',
      '-i',
      o.inventory,
      '-o',
      o.out,
      '--password-file',
      path.join(s.dir, ADMIN_PASSWORD_FILE),
      '--site',
      'kr-south/changwon-plant-2',
      '--broker',
      `mqtts://127.0.0.1:${s.port}`,
    ]);
    let doc: { devices?: { id: string; bucket: string; attention?: string; report?: StatusReport }[] };
    try {
      doc = JSON.parse(r.stdout);
    } catch {
      throw new Error(`edgeforge status exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
    }
    const d = doc.devices?.find((x) => x.id === o.device);
    expect(d && d.bucket !== 'neverSeen', `edgeforge status does not see ${o.device}: ${JSON.stringify(d)}`);
    expect(d!.report!.firstboot.state === 'done', `first boot ${d!.report!.firstboot.state} at ${d!.report!.firstboot.step}`);
    expect(!/applied bundle/.test(d!.attention ?? ''), `the applied bundle is not the build's: ${d!.attention}`);
    return `${o.device}: ${d!.bucket}${d!.attention ? ` (${d!.attention})` : ''}; data volume ${d!.report!.dataVolume.state}; K3s ${d!.report!.k3s.version}`;
  });
}

export async function closeStatus(s: E2eStatus | undefined): Promise<void> {
  if (!s) return;
  if (s.received.length) await fs.writeFile(path.join(s.dir, 'received.jsonl'), s.received.map((m) => JSON.stringify(m)).join('\n') + '\n').catch(() => {});
  await s.sub?.endAsync(true).catch(() => {});
  if (s.broker) {
    await fs.writeFile(path.join(s.dir, 'mosquitto.log'), s.broker.log()).catch(() => {});
    await s.broker.stop();
  }
}
