import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { generateSshKeyPair, parseSshPrivateKey, sshFingerprint, sshKeyPairFromSeed } from '../../scripts/keys/ssh.ts';
import { agentToken, k3sToken, luksRecoveryPassphrase } from '../../scripts/keys/secrets.ts';
import { run, tempDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/ssh.test.ts');

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('OpenSSH ed25519 keys', () => {
  it('ssh-keygen accepts the private key, derives the same public key and fingerprint', () => {
    for (let i = 0; i < 5; i++) {
      const pair = generateSshKeyPair(`root@dev-${i}`);
      expect(pair.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* root@dev-\d$/);
      expect(pair.privateKey.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n')).toBe(true);
      const priv = path.join(dir, `k${i}`);
      writeFileSync(priv, pair.privateKey, { mode: 0o600 });
      writeFileSync(priv + '.pub', pair.publicKey + '\n');
      const y = run('ssh-keygen', ['-y', '-f', priv]);
      expect(y.status, y.stderr).toBe(0);
      expect(y.stdout.trim().split(' ').slice(0, 2)).toEqual(pair.publicKey.split(' ').slice(0, 2));
      for (const f of [priv, priv + '.pub']) {
        const l = run('ssh-keygen', ['-l', '-f', f]);
        expect(l.status, l.stderr).toBe(0);
        expect(l.stdout.split(' ')[1]).toBe(pair.fingerprint);
      }
      expect(sshFingerprint(pair.publicKey)).toBe(pair.fingerprint);
      // the public half really belongs to the seed (derived independently by node:crypto)
      const parsed = parseSshPrivateKey(pair.privateKey);
      expect(sshKeyPairFromSeed(parsed.seed, parsed.comment)).toEqual(pair);
    }
  });

  it('reads keys written by ssh-keygen and re-encodes them to the same public key', () => {
    const f = path.join(dir, 'native');
    const g = run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'native@test', '-f', f]);
    expect(g.status, g.stderr).toBe(0);
    const parsed = parseSshPrivateKey(readFileSync(f, 'utf8'));
    expect(parsed.comment).toBe('native@test');
    const again = sshKeyPairFromSeed(parsed.seed, parsed.comment);
    expect(again.publicKey).toBe(readFileSync(f + '.pub', 'utf8').trim());
  });

  it('encoding is a pure function of seed and comment', () => {
    const seed = Buffer.alloc(32, 7);
    expect(sshKeyPairFromSeed(seed, 'x')).toEqual(sshKeyPairFromSeed(seed, 'x'));
    expect(() => sshKeyPairFromSeed(Buffer.alloc(31), 'x')).toThrow(/32 bytes/);
  });
});

describe.runIf(HAVE_TOOLS)('random secrets', () => {
  it('K3s and agent tokens: 256-bit hex, distinct', () => {
    const t = new Set(Array.from({ length: 100 }, () => k3sToken()).concat(Array.from({ length: 100 }, () => agentToken())));
    expect(t.size).toBe(200);
    for (const x of t) expect(x).toMatch(/^[0-9a-f]{64}$/);
  });

  it('LUKS recovery passphrase: typeable groups, no ambiguous characters, uniform alphabet', () => {
    const all = Array.from({ length: 2000 }, () => luksRecoveryPassphrase());
    expect(new Set(all).size).toBe(all.length);
    for (const p of all) expect(p).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){7}$/);
    // every one of the 32 symbols appears, none dominates (a biased mapping would show here)
    const counts = new Map<string, number>();
    for (const c of all.join('').replace(/-/g, '')) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(32);
    const expected = (all.length * 40) / 32;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.1);
  });
});
