// The previous build in OUT, as far as this build may rely on it. Its device entries are copied into the new
// manifest for skipped devices and re-signed, so it must be what the fleet's build key signed: a manifest whose
// signature does not check out (edited, half-committed, another fleet's) is not trusted and every device is
// rendered again. Which devices can be skipped: inputs hash recorded in that manifest = the live directory's
// stamp (pipeline/write.ts) = this build's inputs hash.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { MANIFEST_NAME, type Manifest, type ManifestDevice } from '../../manifest/types.ts';
import { parseManifest } from '../../manifest/read.ts';
import type { SecretsSource } from '../secrets.ts';
import { readStamp } from '../write.ts';

/** The previous manifest when its signature is good by the build key; undefined otherwise. */
export async function trustedPreviousManifest(outDir: string, secrets: SecretsSource): Promise<Manifest | undefined> {
  if (!secrets.verifySignature) return undefined;
  const file = path.join(outDir, MANIFEST_NAME);
  const [bytes, sig] = await Promise.all([fs.readFile(file).catch(() => undefined), fs.readFile(file + '.asc', 'utf8').catch(() => undefined)]);
  if (!bytes || !sig || !(await secrets.verifySignature(bytes, sig))) return undefined;
  try {
    return parseManifest(bytes, file);
  } catch {
    return undefined; // signed but not a manifest this edgeforge reads: rebuild rather than trust it
  }
}

/** Devices whose previous entry, live stamp and current inputs agree: their entries, by id. */
export async function unchangedDevices(outDir: string, prev: Manifest | undefined, inputs: Map<string, string | undefined>): Promise<Map<string, ManifestDevice>> {
  const out = new Map<string, ManifestDevice>();
  if (!prev) return out;
  const limit = pLimit(32);
  const devicesDir = path.join(outDir, 'devices');
  await Promise.all(
    prev.devices.map((d) =>
      limit(async () => {
        const want = inputs.get(d.id);
        if (!want || d.inputs !== want) return;
        if ((await readStamp(devicesDir, d.id)) === want) out.set(d.id, d);
      }),
    ),
  );
  return out;
}
