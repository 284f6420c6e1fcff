// The fleet's build-signing key: signs manifest.json; its fingerprint is pinned in keys/build/.
import { promises as fs } from 'node:fs';
import * as openpgp from '../util/openpgp.mjs';
import { KeysError } from '../util/errors.ts';
import { KeysLayout } from './layout.ts';
import { normalizeFingerprint, signDetachedWith, verifyDetached, type VerifyResult } from './signing.ts';

/** The build key fingerprint to pin, from keys/build/signing-key.fingerprint. */
export async function readPinnedFingerprint(dir = 'keys'): Promise<string> {
  const layout = new KeysLayout(dir);
  try {
    return normalizeFingerprint(await fs.readFile(layout.buildFingerprintFile, 'utf8'));
  } catch {
    throw new KeysError(`no pinned build key fingerprint at ${layout.buildFingerprintFile}: pass the fingerprint explicitly or run \`edgeforge keys init\``);
  }
}

export class BuildKey {
  private key?: openpgp.PrivateKey;

  constructor(
    private readonly dir: string,
    private readonly layout: KeysLayout,
    /** decrypts the private key file (needs the admin key) */
    private readonly decrypt: (file: string) => Promise<string>,
  ) {}

  async publicKeyArmored(): Promise<string> {
    try {
      return await fs.readFile(this.layout.buildPublic, 'utf8');
    } catch {
      throw new KeysError(`no build signing key in ${this.layout.buildDir}/: run \`edgeforge keys init\``);
    }
  }

  async fingerprint(): Promise<string> {
    const key = await openpgp.readKey({ armoredKey: await this.publicKeyArmored() });
    return key.getFingerprint().toUpperCase();
  }

  /** Armored detached signature (manifest.json.asc). `sourceDateEpoch` (seconds) makes it reproducible. */
  async signDetached(data: Uint8Array, opts: { sourceDateEpoch?: number } = {}): Promise<string> {
    if (!this.key) {
      const armored = await this.decrypt(this.layout.buildPrivate);
      const key = await openpgp.readPrivateKey({ armoredKey: armored });
      if (key.getFingerprint().toUpperCase() !== (await this.fingerprint())) {
        throw new KeysError(`${this.layout.buildPrivate} does not hold the key in ${this.layout.buildPublic}`, 'state');
      }
      this.key = key;
    }
    const date = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000) : undefined;
    return signDetachedWith(this.key, data, date);
  }

  /** Verify with the build key in keys/, pinned to `pinnedFingerprint` (default: keys/build/signing-key.fingerprint). */
  async verifyDetached(data: Uint8Array, signatureArmored: string, pinnedFingerprint?: string): Promise<VerifyResult> {
    const pinned = pinnedFingerprint ?? (await readPinnedFingerprint(this.dir));
    return verifyDetached(data, signatureArmored, pinned, await this.publicKeyArmored());
  }
}
