// `edgeforge status broker-config`: the broker files from the inventory and the device hashes in keys/.
// No admin private key needed: only hashes leave keys/.
//
// Mosquitto (as root) drops to its own user before it reads these files — at start and at every SIGHUP — so a
// rewrite that left them to root would lock every device and the admin out at the next reload. Each file
// replaced keeps the owner, group and mode of the one it replaces; a new file (and DIR/data) takes DIR's owner
// and group (docs/status.md: DIR belongs to the broker's user). All files are staged first and renamed in one
// go: a failure (say, no right to give a file its owner) replaces none of them.
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import { prepareFileAtomic, type PreparedFile } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import { statusCredentialHashes } from '../keys/status-credentials.ts';
import { brokerConfig, type BrokerTls } from './broker-config.ts';
import { adminHash, type AdminSecret } from './admin-credential.ts';
import type { StatusConfig } from '../inventory/fleet-status.ts';

export interface WriteBrokerOptions {
  keysDir: string;
  to: string;
  /** the admin password or a hash file; undefined: keep the admin hash of the passwd file already in `to` */
  admin: AdminSecret;
  port?: number;
  bind?: string;
  /** the directory named inside mosquitto.conf (where the files are on the broker host) */
  dataDir: string;
  tls?: BrokerTls;
}

export interface WrittenBroker {
  files: string[];
  users: number;
  missing: string[];
  admin: 'password' | 'hash file' | 'kept';
  warnings: string[];
}

interface Placement {
  mode: number;
  owner: { uid: number; gid: number };
}

/** The existing file's owner, group and mode; for a new file, the directory's owner and group with `mode`. */
async function placement(file: string, dir: Stats, mode: number): Promise<Placement> {
  const st = await fs.stat(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  return st ? { mode: st.mode & 0o7777, owner: { uid: st.uid, gid: st.gid } } : { mode, owner: { uid: dir.uid, gid: dir.gid } };
}

async function ensureDataDir(dataDir: string, dir: Stats): Promise<Stats> {
  const made = await fs.mkdir(dataDir).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
      return false;
    },
  );
  // the broker writes its persistence file here
  if (made && process.getuid?.() === 0) await fs.chown(dataDir, dir.uid, dir.gid);
  return fs.stat(dataDir);
}

function ownerProblem(file: string, p: Placement, err: unknown): UserError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EPERM')
    return new UserError(`${file}: cannot give the new file the owner ${p.owner.uid}:${p.owner.gid} of the one it replaces (run broker-config as root or as that user); nothing was replaced`, 1);
  return new UserError(`${file}: ${e.code ?? e.message}; nothing was replaced`, 1);
}

export async function writeBrokerConfig(fleet: Pick<Fleet, 'name' | 'active' | 'devices'>, cfg: StatusConfig, o: WriteBrokerOptions): Promise<WrittenBroker> {
  const hashes = await statusCredentialHashes(
    o.keysDir,
    fleet.active.map((d) => d.id),
  );
  await fs.mkdir(o.to, { recursive: true });
  const dirStat = await fs.stat(o.to);
  const admin = await adminHash(cfg.adminUser, o.admin, path.join(o.to, 'passwd'));
  const r = brokerConfig(fleet, cfg, hashes, admin.hash, { dir: o.dataDir, port: o.port, bind: o.bind, tls: o.tls });
  const data = await ensureDataDir(path.join(o.to, 'data'), dirStat);
  const staged: PreparedFile[] = [];
  const placed: [string, Placement][] = [];
  try {
    for (const f of r.files) {
      const file = path.join(o.to, f.name);
      const p = await placement(file, dirStat, f.mode);
      staged.push(await prepareFileAtomic(file, f.text, { mode: p.mode, owner: p.owner }).catch((err) => Promise.reject(ownerProblem(file, p, err))));
      placed.push([f.name, p]);
    }
  } catch (err) {
    await Promise.all(staged.map((s) => s.discard()));
    throw err;
  }
  for (const s of staged) await s.commit();
  return { files: r.files.map((f) => f.name), users: r.users, missing: r.missing, admin: admin.source, warnings: [...admin.warnings, ...rootOwned(o.to, placed, data)] };
}

/** As root, files left to root are unreadable for Mosquitto once it has dropped to its own user. */
function rootOwned(dir: string, placed: [string, Placement][], data: Stats): string[] {
  if (process.getuid?.() !== 0) return [];
  const root = placed.filter(([, p]) => p.owner.uid === 0 && (p.mode & 0o044) === 0).map(([n]) => n);
  if (data.uid === 0) root.push('data/');
  if (!root.length) return [];
  return [
    `${root.map((n) => path.join(dir, n)).join(', ')} belong to root: Mosquitto started as root drops to its own user (mosquitto on Debian) before it reads them and writes data/; run \`chown -R mosquitto: ${dir}\` once (later runs keep each file's owner)`,
  ];
}
