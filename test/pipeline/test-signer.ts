// The build tests' throwaway build key: one curve25519 key made just before EPOCH, and the SecretsSource `sign`
// that signs a manifest with it the way the keystore does (deterministic, dated at the build's epoch).
import * as openpgp from 'openpgp';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';

export async function testBuildKey(epoch: number): Promise<openpgp.PrivateKey> {
  return (await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'test build key' }], date: new Date(epoch * 1000 - 1000), format: 'object' })).privateKey;
}

/** SecretsSource.sign with `key` (a function, so a test may pass a key it makes in beforeAll) */
export function signWith(key: () => openpgp.PrivateKey): SecretsSource['sign'] {
  return async (data, epoch) => {
    const k = key();
    const signature = await openpgp.sign({
      message: await openpgp.createMessage({ binary: data }),
      signingKeys: k,
      detached: true,
      format: 'armored',
      date: new Date(epoch * 1000),
      config: { nonDeterministicSignaturesViaNotation: false },
    });
    return { signature, publicKey: k.toPublic().armor(), fingerprint: k.getFingerprint().toUpperCase() };
  };
}
