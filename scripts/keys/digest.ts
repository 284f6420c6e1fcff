// What a device's or site's identity IS, without decrypting it: the sha256 of its public record (generation,
// public keys, fingerprints) and of the encrypted private file of that generation, byte for byte. A rotation,
// a rewrap or a restored keys/ changes it; nothing else does. The build hashes this into a device's inputs so
// an unchanged device is skipped without its secrets ever being decrypted (key reload is the build's costliest
// read). Undefined when the identity does not exist yet (the build will generate it).
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { KeysLayout } from './layout.ts';

export async function identityDigest(dir: string, kind: 'device' | 'site', id: string): Promise<string | undefined> {
  const layout = new KeysLayout(dir);
  const entity = kind === 'device' ? layout.deviceDir(id) : layout.siteDir(id);
  let pub: Buffer;
  try {
    pub = readFileSync(layout.publicFile(entity)); // sync: thousands of small reads (see pipeline/write.ts)
  } catch {
    return undefined;
  }
  let generation: unknown;
  try {
    generation = (JSON.parse(pub.toString('utf8')) as { generation?: unknown }).generation;
  } catch {
    return undefined; // unreadable record: let the keys stage say what is wrong
  }
  if (typeof generation !== 'number') return undefined;
  let priv: Buffer;
  try {
    priv = readFileSync(layout.privateFile(entity, generation));
  } catch {
    return undefined;
  }
  return createHash('sha256').update(`edgeforge-identity/1\0${kind}\0${id}\0${pub.length}\0`).update(pub).update(priv).digest('hex');
}
