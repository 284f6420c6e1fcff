// For tests and bench:status. A fleet of N generated devices with `status:` pointing at a real Mosquitto on 127.0.0.1 (TLS, certs made
// by openssl here), the broker configured by edgeforge's own broker-config: one user per active device.
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateInventory } from '../inventory/generate.ts';
import { loadInventoryFile } from '../inventory/load.ts';
import type { Fleet } from '../inventory/fleet.ts';
import { statusConfig, type StatusConfig } from '../inventory/status.ts';
import { brokerConfig } from './broker-config.ts';
import { mosquittoHash, statusPassword } from '../keys/mosquitto-passwd.ts';
import { freePort, makeTestCerts, startBroker, type RunningBroker } from './local-broker.ts';

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
  /** devices made revoked (status: stolen) in the inventory */
  revoked: string[];
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
  for (const id of revoked) yaml = yaml.replace(`{ id: ${id}, `, `{ id: ${id}, status: stolen, revoked: { reason: stolen, at: "2026-11-30T00:00:00Z" }, `);
  if (opts.offlineTolerance) yaml = yaml.replace(/^defaults:\n/m, `defaults:\n  policy: { offlineTolerance: ${opts.offlineTolerance} }\n`);
  yaml += `status:\n  broker: mqtts://127.0.0.1:${port}\n  caFile: broker-ca.pem\n  period: ${opts.period ?? '15m'}\n`;
  const inventory = path.join(dir, 'fleet.yaml');
  writeFileSync(inventory, yaml);
  const fleet = await loadInventoryFile(inventory);
  const cfg = statusConfig(fleet)!;
  const passwords = new Map(fleet.devices.map((d) => [d.id, statusPassword()]));
  const bdir = path.join(dir, 'broker');
  mkdirSync(path.join(bdir, 'data'), { recursive: true });
  const writeBroker = (alsoAllow: string[] = []) => {
    const hashes = new Map([...passwords].map(([id, pw]) => [id, mosquittoHash(pw)]));
    const allowed = { name: fleet.name, active: [...fleet.active, ...fleet.devices.filter((d) => alsoAllow.includes(d.id))] };
    const r = brokerConfig(allowed, cfg, hashes, mosquittoHash(ADMIN_PASSWORD), { dir: bdir, bind: '127.0.0.1', tls: { cafile: certs.ca, certfile: certs.cert, keyfile: certs.key } });
    for (const f of r.files) writeFileSync(path.join(bdir, f.name), f.text + (f.name === 'mosquitto.conf' ? testConfLines().join('\n') + '\n' : ''), { mode: f.mode });
  };
  writeBroker();
  const broker = await startBroker(path.join(bdir, 'mosquitto.conf'), port);
  return { dir, inventory, fleet, cfg, ca: readFileSync(certs.ca, 'utf8'), broker, passwords, revoked, writeBroker };
}

/** What a test broker needs beyond the operator's config: logs on stderr; as root, stay root (no mosquitto user needed). */
export function testConfLines(): string[] {
  return ['log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information', 'connection_messages true', ...(process.getuid?.() === 0 ? ['user root'] : [])];
}
