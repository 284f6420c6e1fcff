// Host keys: what a device (or a site gateway) must present before we send it anything.
// Pinned keys come from the inventory (ssh.hostKey), from keys/known_hosts/<name> (recorded by an earlier
// `--trust-new-host-keys` run, or written by hand) and from keys/devices/<id>/public.json (the host key
// edgeforge generated for the device, which the first-boot program installs — so a device that was already
// provisioned once presents it). Never trust on first use silently.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.ts';

export interface PinnedKey {
  type: string;
  blob: Buffer;
  /** where it was pinned, for messages */
  from: string;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-dss)$/;

export function fingerprint(blob: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The key type named inside a wire-format public key blob. */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : 'unknown';
}

/** Parse "ssh-ed25519 AAAA… [comment]" or a known_hosts line "host[,host] ssh-ed25519 AAAA…". */
export function parseKeyLine(line: string, from: string): PinnedKey | undefined {
  const t = line.trim();
  if (!t || t.startsWith('#')) return undefined;
  const words = t.split(/\s+/);
  const i = words.findIndex((w) => KEY_TYPE.test(w));
  if (i < 0 || !words[i + 1]) return undefined;
  const blob = Buffer.from(words[i + 1], 'base64');
  if (blob.length < 16 || blobType(blob) !== words[i]) return undefined;
  return { type: words[i], blob, from };
}

/** A file name under keys/known_hosts/ for a device id or a gateway "host:port". */
export function knownHostsName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

export async function readKnownHostsFile(file: string, shown: string): Promise<PinnedKey[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const keys: PinnedKey[] = [];
  text.split('\n').forEach((l, n) => {
    const k = parseKeyLine(l, `${shown}:${n + 1}`);
    if (k) keys.push(k);
  });
  return keys;
}

/** The host key edgeforge generated for a device (keys/devices/<id>/public.json), if any. */
export async function generatedHostKey(keysDir: string, id: string): Promise<PinnedKey | undefined> {
  const file = path.join(keysDir, 'devices', id, 'public.json');
  try {
    const rec = JSON.parse(await fs.readFile(file, 'utf8')) as { sshHostKey?: { publicKey?: string } };
    const line = rec.sshHostKey?.publicKey;
    return line ? parseKeyLine(line, file) : undefined;
  } catch {
    return undefined;
  }
}

export type HostKeyDecision = { kind: 'pinned'; key: PinnedKey } | { kind: 'mismatch'; presented: string; pinned: PinnedKey[] } | { kind: 'unknown'; presented: string };

export function decide(presented: Buffer, pinned: readonly PinnedKey[]): HostKeyDecision {
  const hit = pinned.find((k) => k.blob.equals(presented));
  if (hit) return { kind: 'pinned', key: hit };
  if (pinned.length) return { kind: 'mismatch', presented: fingerprint(presented), pinned: [...pinned] };
  return { kind: 'unknown', presented: fingerprint(presented) };
}

/** The operator-facing refusal, naming both fingerprints and what to do. */
export function hostKeyMessage(d: Exclude<HostKeyDecision, { kind: 'pinned' }>, who: string, presentedType: string, knownHostsFile: string): string {
  if (d.kind === 'mismatch') {
    const pins = d.pinned.map((k) => `${fingerprint(k.blob)} (${k.type}, pinned in ${k.from})`).join('; ');
    return (
      `HOST KEY MISMATCH for ${who}: it presented ${d.presented} (${presentedType}) but the pinned key is ${pins}. ` +
      `Refusing to connect: this may be a different machine or a man in the middle. If the device was legitimately ` +
      `reinstalled, check the new fingerprint on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update the pin.`
    );
  }
  return (
    `no pinned host key for ${who}; it presented ${d.presented} (${presentedType}). Check that fingerprint on the device's console, ` +
    `then pin it in the inventory (ssh.hostKey), or run again with --trust-new-host-keys to record it in ${knownHostsFile}`
  );
}

/** known_hosts host pattern: "host" on port 22, "[host]:port" otherwise. */
export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Record a newly trusted key (atomically; the file did not pin anything before). */
export async function recordHostKey(file: string, host: string, port: number, blob: Buffer, note: string): Promise<void> {
  const line = `${hostPattern(host, port)} ${blobType(blob)} ${blob.toString('base64')} ${note}\n`;
  await writeFileAtomic(file, line, { mode: 0o644 });
}
