// For tests and bench:status. A fleet of N generated devices with `status:` pointing at a real Mosquitto on 127.0.0.1 (TLS, certs made
// by openssl here), the broker configured by edgeforge's own broker-config: one user per active device. Run as
// root, the broker drops to the `mosquitto` user as on Debian, so its files belong to that user (docs/status.md).
import { chmodSync, chownSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateInventory } from '../inventory/generate.ts';
import { loadInventoryFile } from '../inventory/load.ts';
import type { Fleet } from '../inventory/fleet.ts';
import type { StatusConfig } from '../inventory/fleet-status.ts';
import { brokerConfig } from '../fleet-status/broker-config.ts';
import { ADMIN_PBKDF2_ITERATIONS, mosquittoHash, statusPassword } from '../keys/mosquitto-passwd.ts';
import { freePort, makeTestCerts, startBroker, type RunningBroker } from './mosquitto.ts';

export const ADMIN_PASSWORD = 'admin-test-password-1234';

export interface StatusEnv {
  dir: string;
  inventory: string;
  fleet: Fleet;
  cfg: StatusConfig;
  ca: string;
  broker: RunningBroker;
  /** every device's password, revoked ones included (they keep the card they were given) */
  passwords: Map<string, string>;
  /** devices made revoked (status: stolen) in the inventory, a minute before the testbed started */
  revoked: string[];
  revokedAt: string;
  /** rewrite the broker's files; `alsoAllow` gives users to devices that are not active (an operator who forgot broker-config) */
  writeBroker: (alsoAllow?: string[]) => void;
}

/** n active devices + `revokedCount` more marked stolen; `period` for the status block; `offlineTolerance` for every site (default: the industry preset's). */
export async function statusEnv(n: number, opts: { revokedCount?: number; period?: string; offlineTolerance?: string } = {}): Promise<StatusEnv> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ef-status-'));
  const certs = makeTestCerts(path.join(dir, 'certs'));
  writeFileSync(path.join(dir, 'broker-ca.pem'), readFileSync(certs.ca));
  const port = await freePort();
  const total = n + (opts.revokedCount ?? 0);
  let yaml = generateInventory(total, { name: 'status-test' }).replace(/^ {2}deviceCount: \d+\n/m, '');
  const ids = [...yaml.matchAll(/\{ id: ([a-z0-9-]+),/g)].map((m) => m[1]);
  const revoked = ids.slice(ids.length - (opts.revokedCount ?? 0));
  const revokedAt = new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (const id of revoked) yaml = yaml.replace(`{ id: ${id}, `, `{ id: ${id}, status: stolen, revoked: { reason: stolen, at: "${revokedAt}" }, `);
  if (opts.offlineTolerance) yaml = yaml.replace(/^defaults:\n/m, `defaults:\n  policy: { offlineTolerance: ${opts.offlineTolerance} }\n`);
  yaml += `status:\n  broker: mqtts://127.0.0.1:${port}\n  caFile: broker-ca.pem\n  period: ${opts.period ?? '15m'}\n`;
  const inventory = path.join(dir, 'fleet.yaml');
  writeFileSync(inventory, yaml);
  const fleet = await loadInventoryFile(inventory);
  const cfg = fleet.status!;
  const passwords = new Map(fleet.devices.map((d) => [d.id, statusPassword()]));
  const bdir = path.join(dir, 'broker');
  mkdirSync(path.join(bdir, 'data'), { recursive: true });
  const adminHash = mosquittoHash(ADMIN_PASSWORD, { iterations: ADMIN_PBKDF2_ITERATIONS });
  const writeBroker = (alsoAllow: string[] = []) => {
    const hashes = new Map([...passwords].map(([id, pw]) => [id, mosquittoHash(pw)]));
    const allowed = { name: fleet.name, devices: fleet.devices, active: [...fleet.active, ...fleet.devices.filter((d) => alsoAllow.includes(d.id))] };
    const r = brokerConfig(allowed, cfg, hashes, adminHash, { dir: bdir, bind: '127.0.0.1', tls: { cafile: certs.ca, certfile: certs.cert, keyfile: certs.key } });
    for (const f of r.files) writeFileSync(path.join(bdir, f.name), f.text, { mode: f.mode });
    asBrokerUser(bdir);
  };
  writeBroker();
  openToBroker(dir);
  asBrokerUser(path.dirname(certs.ca));
  const broker = await startBroker(path.join(bdir, 'mosquitto.conf'), port);
  return { dir, inventory, fleet, cfg, ca: readFileSync(certs.ca, 'utf8'), broker, passwords, revoked, revokedAt, writeBroker };
}

/** The user Mosquitto drops to when started as root: `mosquitto` (Debian's package creates it), from /etc/passwd. */
export function brokerUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('mosquitto:'));
  if (!line) throw new Error('running as root, Mosquitto drops to the user "mosquitto", which does not exist (the Debian package mosquitto creates it)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** As root: give `dir` and what is in it to the broker's user (`chown -R mosquitto: DIR`, docs/status.md). */
export function asBrokerUser(dir: string): void {
  const u = brokerUser();
  if (!u) return;
  const walk = (p: string) => {
    chownSync(p, u.uid, u.gid);
    for (const e of readdirSync(p, { withFileTypes: true })) e.isDirectory() ? walk(path.join(p, e.name)) : chownSync(path.join(p, e.name), u.uid, u.gid);
  };
  walk(dir);
}

/** A test's temporary directory is 0700: let the broker's user pass through it, as it passes /etc/mosquitto. */
export function openToBroker(dir: string): void {
  if (brokerUser()) chmodSync(dir, 0o755);
}

/** The ARM64 boot test's additions to the operator's config: logs on stderr; as root, stay root (its work tree is root's). */
export function testConfLines(): string[] {
  return ['log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information', 'connection_messages true', ...(process.getuid?.() === 0 ? ['user root'] : [])];
}
