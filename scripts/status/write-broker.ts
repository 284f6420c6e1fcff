// `edgeforge status broker-config`: the broker files from the inventory and the device hashes in keys/,
// written atomically (passwd 0600). No admin private key needed: only hashes leave keys/.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { mosquittoHash } from '../keys/mosquitto-passwd.ts';
import { statusCredentialHashes } from '../keys/status-credentials.ts';
import { brokerConfig, type BrokerTls } from './broker-config.ts';
import type { StatusConfig } from '../inventory/status.ts';

export interface WriteBrokerOptions {
  keysDir: string;
  to: string;
  adminPassword: string;
  port?: number;
  bind?: string;
  /** the directory named inside mosquitto.conf (where the files are on the broker host) */
  dataDir: string;
  tls?: BrokerTls;
  /** extra lines appended to mosquitto.conf (tests: log_dest stderr, user root) */
  extraConf?: string[];
}

export async function writeBrokerConfig(fleet: Pick<Fleet, 'name' | 'active'>, cfg: StatusConfig, o: WriteBrokerOptions): Promise<{ files: string[]; users: number; missing: string[] }> {
  const hashes = await statusCredentialHashes(o.keysDir, fleet.active.map((d) => d.id));
  const r = brokerConfig(fleet, cfg, hashes, mosquittoHash(o.adminPassword), { dir: o.dataDir, port: o.port, bind: o.bind, tls: o.tls });
  await fs.mkdir(path.join(o.to, 'data'), { recursive: true });
  for (const f of r.files) {
    const text = f.name === 'mosquitto.conf' && o.extraConf?.length ? f.text + o.extraConf.join('\n') + '\n' : f.text;
    await writeFileAtomic(path.join(o.to, f.name), text, { mode: f.mode });
  }
  return { files: r.files.map((f) => f.name), users: r.users, missing: r.missing };
}
