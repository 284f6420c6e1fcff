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
import { ManifestError } from '../../util/errors.ts';
import type { SecretsSource } from '../secrets.ts';
import { readStamp } from '../write.ts';

/** The previous build in OUT as this build may rely on it: its manifest when the build key signed it; when a
 *  manifest is there but cannot be trusted, why. Neither: no manifest, or a source that cannot check signatures. */
export interface PreviousBuild {
  manifest?: Manifest;
  untrusted?: string;
}

export async function previousBuild(outDir: string, secrets: SecretsSource): Promise<PreviousBuild> {
  if (!secrets.verifySignature) return {};
  const file = path.join(outDir, MANIFEST_NAME);
  const [bytes, sig] = await Promise.all([fs.readFile(file).catch(() => undefined), fs.readFile(file + '.asc', 'utf8').catch(() => undefined)]);
  if (!bytes) {
    const left = await leftovers(outDir, sig !== undefined);
    return left ? { untrusted: `${MANIFEST_NAME} is missing, but the previous build's ${left} ${left.endsWith('asc') ? 'is' : 'are'} there` } : {};
  }
  if (!sig) return { untrusted: `${MANIFEST_NAME}.asc is missing (the previous build was not signed)` };
  if (!(await secrets.verifySignature(bytes, sig)))
    return { untrusted: `${MANIFEST_NAME}.asc is not a good signature over ${MANIFEST_NAME} by the fleet's build key (edited, damaged, or signed by another key)` };
  try {
    return { manifest: parseManifest(bytes, file) };
  } catch (err) {
    // signed but not a manifest this edgeforge reads: rebuild rather than trust it
    if (err instanceof ManifestError) return { untrusted: `signed, but not a manifest this edgeforge reads (${err.problem})` };
    throw err;
  }
}

/** Without its manifest, a build is still recognisable by its signature or its device directories: what of them is there. */
async function leftovers(outDir: string, signature: boolean): Promise<string | undefined> {
  const dirs = (await fs.readdir(path.join(outDir, 'devices')).catch(() => [] as string[])).length > 0;
  const found = [...(signature ? [`${MANIFEST_NAME}.asc`] : []), ...(dirs ? ['device directories'] : [])];
  return found.length ? found.join(' and ') : undefined;
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
