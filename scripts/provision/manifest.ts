// Reading the build provision delivers: OUT/manifest.json, checked against its signature by the build key
// pinned in keys/ before any of its secrets go to a device. (Artifact bytes are checked per device in upload.)
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseManifest } from '../manifest/read.ts';
import { MANIFEST_NAME, type Manifest } from '../manifest/types.ts';
import { ManifestError } from '../util/errors.ts';
import { verifyDetached } from '../keys/signing.ts';
import { readPinnedFingerprint } from '../keys/build-key.ts';
import { KeysLayout } from '../keys/layout.ts';

export async function loadManifest(outDir: string, keysDir: string, opts: { allowUnsigned?: boolean } = {}): Promise<{ manifest: Manifest; signed: boolean }> {
  const file = path.join(outDir, MANIFEST_NAME);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch {
    throw new ManifestError(file, `no build here; run edgeforge build -o ${outDir} first (or pass -o DIR)`);
  }
  const asc = await fs.readFile(file + '.asc', 'utf8').catch(() => undefined);
  if (asc === undefined) {
    if (!opts.allowUnsigned)
      throw new ManifestError(
        `${file}.asc`,
        'missing: the build is unsigned. Provision delivers device secrets, so it only trusts signed builds; rebuild with edgeforge build, or pass --allow-unsigned for a test build',
      );
  } else {
    let pinned: string;
    try {
      pinned = await readPinnedFingerprint(keysDir);
    } catch (err) {
      throw new ManifestError(`${file}.asc`, `cannot check it: ${(err as Error).message}`);
    }
    let result: { ok: boolean; error?: string } = { ok: false, error: `no public key for the pinned build key ${pinned}` };
    for (const candidate of [new KeysLayout(keysDir).buildPublic, path.join(outDir, 'signing-key.asc')]) {
      const pub = await fs.readFile(candidate, 'utf8').catch(() => undefined);
      if (!pub) continue;
      result = await verifyDetached(bytes, asc, pinned, pub);
      if (result.ok) break;
    }
    if (!result.ok) throw new ManifestError(file, `${result.error}; refusing to deliver this build (run edgeforge verify ${outDir})`);
  }
  return { manifest: parseManifest(bytes, file), signed: asc !== undefined };
}
