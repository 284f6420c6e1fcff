// The disk-encryption device stage: per device with encryption.mode other than none, the encrypted data
// volume's program and units, and the LUKS recovery passphrase joining the one-time secrets. With a saved
// advertisement of the site's tang server those secrets are sealed into bundle/sealed-secrets.jwe and their
// clear copies withheld (neither in the bundle nor in user-data). Deterministic: the sealing seed is derived
// from the secrets themselves (high-entropy, known only to the build), so rebuilds give the same bytes.
import { createHash } from 'node:crypto';
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { isOneTimeSecret, type DeviceStage } from '../device-stage.ts';
import { textFile, type RenderedFile } from '../files.ts';
import { encryptionPlan } from './plan.ts';
import { encryptionBundleFiles } from './compose.ts';
import { isAbDevice } from '../../inventory/os.ts';
import { piDataPartition } from '../os/slots.ts';

type SecretFile = { name: string; bytes: Uint8Array; mode: number };

/** `advertisements`: tang URL -> its saved advertisement (JWS), the stage's declared input. */
export function encryptionStage(fleet: Fleet, advertisements: Record<string, string>, sourceDateEpoch: number): DeviceStage {
  const digest = createHash('sha256');
  for (const k of Object.keys(advertisements).sort()) digest.update(`${k}\0${advertisements[k].length}\0${advertisements[k]}`);
  return {
    inputs: { advertisements: digest.digest('hex') },
    render(d, { secrets, bundle }) {
      if (d.encryption.mode === 'none') return { files: [] };
      const own: RenderedFile[] = secrets.luksRecovery ? [textFile('bundle/secrets/luks-recovery', 'other', secrets.luksRecovery + '\n', true)] : [];
      // as they sit on the device: bundle/secrets/NAME as NAME, the Flux secret manifest as flux/NAME
      const oneTime = [...bundle, ...own].filter(isOneTimeSecret);
      const secretFiles = oneTime
        .map((f) => ({ name: f.path.startsWith('bundle/secrets/') ? f.path.slice('bundle/secrets/'.length) : f.path.slice('bundle/'.length), bytes: f.bytes, mode: f.mode }))
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      const r = encryptionFiles(fleet, d, advertisements, secretFiles, sourceDateEpoch);
      return r.sealed ? { files: r.files, withhold: oneTime.map((f) => f.path) } : { files: [...own, ...r.files] };
    },
  };
}

function encryptionFiles(fleet: Fleet, d: ResolvedDevice, advertisements: Record<string, string>, secretFiles: SecretFile[], sourceDateEpoch: number): { files: RenderedFile[]; sealed: boolean } {
  const h = createHash('sha256').update(`edgeforge-seal-seed/1\0${fleet.name}\0${d.id}\0`);
  for (const f of secretFiles) h.update(`${f.name}\0${f.bytes.length}\0`).update(f.bytes);
  const plan = encryptionPlan(d, advertisements);
  // a Raspberry Pi A/B card has no primary MBR slot left: its data partition is made with the card (render/os/slots.ts)
  if (!plan.dataPartition && isAbDevice(fleet, d) && d.profile.baseImage.layout === 'raspi-mbr') plan.dataPartition = piDataPartition(fleet.name);
  return encryptionBundleFiles(d, plan, { secrets: secretFiles, sourceDateEpoch, sealSeed: h.digest() });
}
