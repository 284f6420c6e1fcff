// SOPS files edgeforge writes and rotates must stay readable by GnuPG (what sops and Flux use).
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { generateV4Key } from '../../scripts/keys/pgp-ops.mjs';
import { sopsDecrypt, sopsEncrypt, sopsRecipients, sopsRotate, decryptValue } from '../../scripts/lifecycle/sops.ts';
const HAVE_TOOLS = requireTools(['gpg'], 'test/lifecycle/sops.test.ts');

const key = (n: string) => generateV4Key({ name: n, email: `${n}@example.com`, date: '2020-01-01T00:00:00.000Z' });

function gpgDecryptDataKey(home: string, privateArmored: string, enc: string): Buffer | null {
  const kf = path.join(home, `k${Math.random()}.asc`);
  writeFileSync(kf, privateArmored);
  execFileSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--import', kf], { stdio: 'ignore' });
  const r = spawnSync(tool('gpg'), ['--homedir', home, '--batch', '--quiet', '--decrypt'], { input: enc });
  return r.status === 0 ? r.stdout : null;
}

describe.runIf(HAVE_TOOLS)('sops (pgp)', () => {
  it('encrypts a Secret so each recipient — and gpg — can read it; rotation drops a recipient', async () => {
    const [admin, site, thief, other] = await Promise.all([key('admin'), key('site'), key('stolen-device'), key('other-device')]);
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mqtt', namespace: 'line' }, stringData: { password: 's3cret', port: 1883, tls: true } };
    const text = await sopsEncrypt(
      secret,
      [admin, site, thief, other].map((k) => ({ fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored })),
    );
    expect(text).toContain('kind: Secret'); // only data/stringData is encrypted
    expect(text).not.toContain('s3cret');
    expect(sopsRecipients(text)).toHaveLength(4);
    expect(await sopsDecrypt(text, thief.privateKeyArmored)).toEqual(secret);

    // gpg reads the data key, and the data key opens the value
    const home = mkdtempSync(path.join(tmpdir(), 'ef-gpg-'));
    const doc = parse(text);
    const dk = gpgDecryptDataKey(home, other.privateKeyArmored, doc.sops.pgp.find((p: { fp: string }) => p.fp === other.fingerprint).enc);
    expect(dk).not.toBeNull();
    expect(decryptValue(doc.stringData.password, dk!, 'stringData:password:')).toBe('s3cret');

    // revoke the thief: new data key, re-encrypted to the others
    const rotated = await sopsRotate(
      text,
      site.privateKeyArmored,
      [admin, site, other].map((k) => ({ fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored })),
    );
    expect(sopsRecipients(rotated)).not.toContain(thief.fingerprint);
    await expect(sopsDecrypt(rotated, thief.privateKeyArmored)).rejects.toThrow(/none of the sops.pgp entries/);
    expect(await sopsDecrypt(rotated, admin.privateKeyArmored)).toEqual(secret);
    const doc2 = parse(rotated);
    expect(doc2.stringData.password).not.toBe(doc.stringData.password);
    const home2 = mkdtempSync(path.join(tmpdir(), 'ef-gpg-'));
    const dk2 = gpgDecryptDataKey(home2, other.privateKeyArmored, doc2.sops.pgp.find((p: { fp: string }) => p.fp === other.fingerprint).enc);
    expect(decryptValue(doc2.stringData.password, dk2!, 'stringData:password:')).toBe('s3cret');
    expect(dk2!.equals(dk!)).toBe(false);
  });
  it('detects tampering through the MAC', async () => {
    const k = await key('a');
    const text = await sopsEncrypt({ stringData: { a: 'x' }, metadata: { name: 'n' } }, [{ fingerprint: k.fingerprint, publicKeyArmored: k.publicKeyArmored }]);
    await expect(sopsDecrypt(text.replace('name: n', 'name: m'), k.privateKeyArmored)).rejects.toThrow(/MAC mismatch/);
  });
});
