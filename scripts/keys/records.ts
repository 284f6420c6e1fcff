// The public record of a device or site (public.json): fingerprints and public keys in clear, the commit point
// of a generation. Reading one checks it is the record it claims to be.
import { promises as fs } from 'node:fs';
import { KeysError } from '../util/errors.ts';
import type { KeysLayout } from './layout.ts';
import type { EntityKind, HistoryEntry, PgpKeyMaterial } from './types.ts';

interface PublicSsh {
  publicKey: string;
  fingerprint: string;
}
interface PublicPgp {
  fingerprint: string;
  publicKeyArmored: string;
  created: string;
}
interface RecordBase {
  id: string;
  generation: number;
  /** wall-clock time this generation was made (metadata; never rendered into artifacts) */
  created: string;
  /** admin fingerprints the private file is encrypted to */
  encryptedTo: string[];
  sops: PublicPgp;
  history: HistoryEntry[];
}
export interface DeviceRecord extends RecordBase {
  format: 'edgeforge-device-keys/1';
  sshHostKey: PublicSsh;
  deployKey: PublicSsh;
}
export interface SiteRecord extends RecordBase {
  format: 'edgeforge-site-keys/1';
}
export type AnyRecord = DeviceRecord | SiteRecord;

export const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

export async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function readJsonIfExists<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeysError(`${file}: ${(err as Error).message}`, 'state');
  }
}

export function entityDir(layout: KeysLayout, kind: EntityKind, id: string): string {
  return kind === 'device' ? layout.deviceDir(id) : layout.siteDir(id);
}

export async function readRecord(layout: KeysLayout, kind: EntityKind, id: string): Promise<AnyRecord | undefined> {
  const file = layout.publicFile(entityDir(layout, kind, id));
  const rec = await readJsonIfExists<AnyRecord>(file);
  if (rec && (rec.id !== id || rec.format !== (kind === 'device' ? 'edgeforge-device-keys/1' : 'edgeforge-site-keys/1'))) {
    throw new KeysError(`${file}: record is for ${rec.format} "${rec.id}", not ${kind} "${id}"`, 'state');
  }
  return rec;
}

export function fingerprintsOf(rec: AnyRecord): Record<string, string> {
  const out: Record<string, string> = {};
  if (rec.format === 'edgeforge-device-keys/1') {
    out.sshHostKey = rec.sshHostKey.fingerprint;
    out.deployKey = rec.deployKey.fingerprint;
  }
  out.sops = rec.sops.fingerprint;
  return out;
}

export function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

/** Fixed field order, so a freshly generated identity and a reloaded one are the same value. */
export function pgpMaterial(k: PgpKeyMaterial): PgpKeyMaterial {
  return { fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored, privateKeyArmored: k.privateKeyArmored, created: k.created };
}
