// verifyBuild: the signature must be by the pinned build key, and every listed artifact must match.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { promises as fs, writeFileSync, readFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { initKeys } from '../../scripts/keys/init.ts';
import { openKeyStore, type KeyStore } from '../../scripts/keys/store.ts';
import { verifyBuild } from '../../scripts/keys/verify.ts';
import { generateV4Key } from '../../scripts/keys/pgp-ops.mjs';
import { signDetachedWith } from '../../scripts/keys/signing.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { gnupgHome, tempDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/verify.test.ts');

const root = tempDir();
const keys = path.join(root, 'keys');
let ks: KeyStore;
let fpr: string;
beforeAll(async () => {
  fpr = (await initKeys({ dir: keys, exampleAdmin: true })).buildKeyFingerprint;
  ks = await openKeyStore({ dir: keys, workers: 0 });
});
afterAll(async () => {
  await ks.close();
  await fs.rm(root, { recursive: true, force: true });
});

/** A small build output the way the build step writes it: artifacts, then manifest, signature, key copy. */
async function makeBuild(name: string): Promise<string> {
  const out = path.join(root, name);
  const files: Record<string, { bytes: Buffer; secret: boolean; kind: string }> = {
    'devices/dev-1/seed/user-data': { bytes: Buffer.from('#cloud-config\nhostname: dev-1\n'), secret: true, kind: 'user-data' },
    'devices/dev-1/seed/meta-data': { bytes: Buffer.from('instance-id: dev-1-g1\n'), secret: false, kind: 'meta-data' },
    'devices/dev-2/seed/user-data': { bytes: Buffer.alloc(300_000, 1), secret: true, kind: 'user-data' },
  };
  for (const [p, f] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(out, p)), { recursive: true });
    writeFileSync(path.join(out, p), f.bytes, { mode: f.secret ? 0o600 : 0o644 });
  }
  const manifest = {
    format: 'edgeforge-manifest/1',
    fleet: 'test',
    inventorySha256: sha256Hex(Buffer.from('inventory')),
    sourceDateEpoch: 1767225600,
    devices: ['dev-1', 'dev-2'].map((id) => ({
      id,
      region: 'r',
      site: 's',
      profile: 'p',
      artifacts: Object.entries(files)
        .filter(([p]) => p.startsWith(`devices/${id}/`))
        .map(([p, f]) => ({ kind: f.kind, path: p, sha256: sha256Hex(f.bytes), bytes: f.bytes.length, secret: f.secret })),
    })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(path.join(out, 'manifest.json'), bytes);
  writeFileSync(path.join(out, 'manifest.json.asc'), await ks.signDetached(bytes, { sourceDateEpoch: 1767225600 }));
  writeFileSync(path.join(out, 'signing-key.asc'), await ks.buildPublicKeyArmored());
  return out;
}

const opts = () => ({ keysDir: keys });

describe.runIf(HAVE_TOOLS)('verifyBuild', () => {
  it('accepts an intact build, pinned from keys/, and gpg agrees', async () => {
    const out = await makeBuild('good');
    const r = await verifyBuild(out, undefined, opts());
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.signature).toMatchObject({ ok: true, fingerprint: fpr, signedAt: '2026-01-01T00:00:00.000Z' });
    expect(r).toMatchObject({ devices: 2, artifacts: 3 });
    expect(r.bytes).toBe(300_000 + 30 + 22);
    // explicit pin with spaces, as people paste it; and without keys/ (key taken from the OUT copy)
    const spaced = fpr.match(/.{4}/g)!.join(' ');
    expect((await verifyBuild(out, spaced, { keysDir: path.join(root, 'nokeys') })).ok).toBe(true);

    const g = gnupgHome();
    try {
      expect(g.gpg(['--import', path.join(out, 'signing-key.asc')]).status).toBe(0);
      const v = g.gpg(['--status-fd', '1', '--verify', path.join(out, 'manifest.json.asc'), path.join(out, 'manifest.json')]);
      expect(v.status, v.stderr).toBe(0);
      expect(v.stdout).toContain(`VALIDSIG ${fpr}`);
    } finally {
      g.done();
    }
  });

  it('the signature is reproducible: same manifest and SOURCE_DATE_EPOCH, same bytes', async () => {
    const a = await makeBuild('rep-a');
    const b = await makeBuild('rep-b');
    expect(readFileSync(path.join(a, 'manifest.json.asc'))).toEqual(readFileSync(path.join(b, 'manifest.json.asc')));
  });

  it('finds a changed byte, a truncated file, a missing file and an unsafe path', async () => {
    const out = await makeBuild('tampered');
    const ud = path.join(out, 'devices/dev-1/seed/user-data');
    const b = readFileSync(ud);
    b[0] ^= 1;
    writeFileSync(ud, b);
    await fs.truncate(path.join(out, 'devices/dev-2/seed/user-data'), 10);
    await fs.rm(path.join(out, 'devices/dev-1/seed/meta-data'));
    const r = await verifyBuild(out, undefined, opts());
    expect(r.ok).toBe(false);
    expect(r.signature.ok).toBe(true);
    expect(r.problems.map((p) => [p.device, p.path, p.message.split(' ')[0]])).toEqual([
      ['dev-1', 'devices/dev-1/seed/meta-data', 'missing'],
      ['dev-1', 'devices/dev-1/seed/user-data', 'sha256'],
      ['dev-2', 'devices/dev-2/seed/user-data', 'size'],
    ]);

    // a re-signed manifest pointing outside OUT is still refused
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    m.devices[0].artifacts[0].path = '../keys/build/signing-key.asc';
    const mb = Buffer.from(JSON.stringify(m));
    writeFileSync(path.join(out, 'manifest.json'), mb);
    writeFileSync(path.join(out, 'manifest.json.asc'), await ks.signDetached(mb));
    const r2 = await verifyBuild(out, undefined, opts());
    expect(r2.problems.some((p) => /relative to OUT/.test(p.message))).toBe(true);
  });

  it('rejects a corrupted signature, a changed manifest, and a foreign key that replaced signing-key.asc', async () => {
    const out = await makeBuild('sig');
    const sigFile = path.join(out, 'manifest.json.asc');
    const good = readFileSync(sigFile, 'utf8');

    // corrupted: flip characters inside the base64 body
    const lines = good.split('\n');
    const i = lines.findIndex((l) => l.length > 40);
    lines[i] = lines[i].slice(0, 10) + (lines[i][10] === 'A' ? 'B' : 'A') + lines[i].slice(11);
    writeFileSync(sigFile, lines.join('\n'));
    let r = await verifyBuild(out, undefined, opts());
    expect(r.ok).toBe(false);
    expect(r.signature.ok).toBe(false);

    // manifest edited after signing (e.g. a hash swapped to match a planted file)
    writeFileSync(sigFile, good);
    const mf = path.join(out, 'manifest.json');
    const orig = readFileSync(mf);
    writeFileSync(mf, orig.toString().replace('"fleet": "test"', '"fleet": "evil"'));
    r = await verifyBuild(out, undefined, opts());
    expect(r.signature.ok).toBe(false);
    writeFileSync(mf, orig);

    // a forger re-signs with their own key and drops it in as signing-key.asc: refused, pinned key differs
    const forger = await generateV4Key({ name: 'forger', email: 'f@example.com', date: '2020-01-01T00:00:00Z' });
    writeFileSync(sigFile, await signDetachedWith(await openpgp.readPrivateKey({ armoredKey: forger.privateKeyArmored }), orig));
    writeFileSync(path.join(out, 'signing-key.asc'), forger.publicKeyArmored);
    for (const keysDir of [keys, path.join(root, 'nokeys')]) {
      r = await verifyBuild(out, fpr, { keysDir });
      expect(r.ok).toBe(false);
      expect(r.signature.error).toMatch(/pinned/);
    }
    // and pinning the forger's fingerprint is the only way it passes: the pin is what matters
    expect((await verifyBuild(out, forger.fingerprint, { keysDir: path.join(root, 'nokeys') })).ok).toBe(true);
  });

  it('refuses to run unpinned, reports a missing manifest or signature, warns on a secret readable by others', async () => {
    const out = await makeBuild('misc');
    await expect(verifyBuild(out, undefined, { keysDir: path.join(root, 'nokeys') })).rejects.toThrow(/no pinned build key fingerprint/);
    chmodSync(path.join(out, 'devices/dev-1/seed/user-data'), 0o644);
    const r = await verifyBuild(out, undefined, opts());
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([{ device: 'dev-1', path: 'devices/dev-1/seed/user-data', message: 'secret artifact has mode 644; expected 600' }]);
    await fs.rm(path.join(out, 'manifest.json.asc'));
    expect((await verifyBuild(out, undefined, opts())).problems[0].message).toMatch(/unsigned/);
    await fs.rm(path.join(out, 'manifest.json'));
    expect((await verifyBuild(out, undefined, opts())).problems[0].message).toMatch(/missing/);
  });
});
