// Every one-time secret travels sealed to the site's tang when its advertisement is saved: the
// host key, the K3s tokens, the LUKS recovery passphrase AND the Flux bootstrap's secret manifest (Git deploy
// key, device SOPS key). The seed a technician carries — user-data and seed.img — is scanned for any
// private-key armour and any secret value, raw, base64-encoded (a Kubernetes Secret's data), inside each
// write_files entry decoded by its `encoding` (b64, gzip), and in the seed image read back with mtools.
// The same scan of an unsealed site's seed finds them: the scanner is shown to work, not just to pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { EXAMPLE, fixedSecretsFor, withFlux } from '../../scripts/testkit/fixed-secrets.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { renderDevice, type DeviceSecrets } from '../../scripts/render/device.ts';
import { encryptionStage } from '../../scripts/render/encryption/encryption-stage.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import { makeSeedImage } from '../../scripts/disk/seed-image.ts';
import type { RenderedFile } from '../../scripts/render/files.ts';
import { TangServer, tmp, withTang } from './helpers.ts';

const HAVE_TOOLS = requireTools(['curl', 'jose', 'socat', 'tangd', 'tangd-keygen', 'mcopy', 'mdir'], 'test/encryption/sealed-seed.test.ts');

const ARMOUR = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|AGE-SECRET-KEY-/;

/** every secret value a device's seed could carry, each also as base64 (how a Kubernetes Secret's data holds it) */
function secretValues(s: DeviceSecrets): string[] {
  const raw = [s.sshHostKey.privateKey, s.k3sToken, s.agentToken, s.luksRecovery, s.deployKey?.privateKey, s.sops?.privateKeyArmored].filter((x): x is string => Boolean(x));
  const out = new Set<string>();
  for (const v of raw) {
    out.add(v.trim());
    out.add(Buffer.from(v).toString('base64'));
    out.add(Buffer.from(v.trim()).toString('base64'));
    // the body lines of a multi-line key: a fragment of one is a leak too
    for (const l of v.split('\n')) if (l.length >= 24 && !l.startsWith('-----')) out.add(l.trim());
  }
  return [...out];
}

/** the texts to scan in a user-data document: itself, and each write_files entry decoded by its encoding */
function userDataTexts(ud: string): string[] {
  const texts = [ud];
  const doc = YAML.parse(ud, { version: '1.1' }) as { write_files?: { content?: string; encoding?: string }[]; ssh_keys?: unknown };
  for (const w of doc.write_files ?? []) {
    const c = w.content ?? '';
    const enc = w.encoding ?? 'text/plain';
    if (/^(b64|base64)$/.test(enc)) texts.push(Buffer.from(c, 'base64').toString('latin1'));
    else if (/^(gz\+b64|gzip\+base64|gz\+base64|gzip\+b64)$/.test(enc)) texts.push(gunzipSync(Buffer.from(c, 'base64')).toString('latin1'));
    else if (/^(gz|gzip)$/.test(enc)) texts.push(gunzipSync(Buffer.from(c, 'latin1')).toString('latin1'));
    else texts.push(c);
  }
  if (doc.ssh_keys) texts.push(JSON.stringify(doc.ssh_keys));
  return texts;
}

/** what a scan finds: armour and secret values, by where */
function leaks(texts: { where: string; text: string }[], values: string[]): string[] {
  const found: string[] = [];
  for (const { where, text } of texts) {
    for (const m of new Set([...text.matchAll(new RegExp(ARMOUR.source, 'g'))].map((x) => x[0]))) found.push(`${where}: ${m}`);
    // armour inside any base64 run (a Kubernetes Secret's data, an encoded write_files entry)
    for (const run of text.match(/[A-Za-z0-9+/]{40,}={0,2}/g) ?? []) {
      const m = ARMOUR.exec(Buffer.from(run, 'base64').toString('latin1'));
      if (m) found.push(`${where} (base64): ${m[0]}`);
    }
    for (const v of values) if (text.includes(v)) found.push(`${where}: secret value ${v.slice(0, 12)}…`);
  }
  return found;
}

let fleet: Fleet;
let dir: string;
let tang: TangServer;

beforeAll(async () => {
  fleet = withFlux(await loadInventoryFile(EXAMPLE));
  dir = tmp('sealed-seed');
  tang = new TangServer(path.join(dir, 'tang'));
  await tang.start();
}, 30_000);
afterAll(async () => {
  await tang?.stop();
});

describe.runIf(HAVE_TOOLS)('a sealed site: nothing secret on the seed', () => {
  async function seedOf(sealed: boolean): Promise<{ d: ResolvedDevice; files: RenderedFile[]; texts: { where: string; text: string }[] }> {
    const base = fleet.active.find((x) => x.encryption.mode === 'tang' && x.cluster.kind !== 'multi-node-agent')!;
    const d = withTang(base, [tang]);
    const advs = sealed ? { [tang.url]: tang.advertisement() } : {};
    const encryption = encryptionStage(fleet, advs, 1767225600);
    const flux = await prepareFlux(fleet, EXAMPLE);
    const files = renderDevice(fleet, d, fixedSecretsFor(d), { ...flux.render, encryption });
    const get = (p: string) => files.find((f) => f.path === p)!.bytes;
    const seed = [
      { name: 'user-data', bytes: get('seed/user-data') },
      { name: 'meta-data', bytes: get('seed/meta-data') },
      { name: 'network-config', bytes: get('seed/network-config') },
    ];
    const img = path.join(dir, `${sealed ? 'sealed' : 'unsealed'}-seed.img`);
    writeFileSync(img, await makeSeedImage(seed, { epoch: 1767225600 }));
    const ud = Buffer.from(get('seed/user-data')).toString('utf8');
    // the image as bytes, and its files read back by mtools
    const listed = spawnSync(tool('mdir'), ['-i', img, '-b', '::'], { encoding: 'utf8' });
    expect(listed.status, listed.stderr).toBe(0);
    const texts = [
      ...userDataTexts(ud).map((text, i) => ({ where: i ? `user-data write_files[${i - 1}]` : 'user-data', text })),
      { where: 'seed.img (raw bytes)', text: Buffer.from(await import('node:fs').then((m) => m.readFileSync(img))).toString('latin1') },
    ];
    for (const name of listed.stdout
      .trim()
      .split('\n')
      .map((l) => l.replace(/^::\/?/, ''))) {
      const r = spawnSync(tool('mcopy'), ['-i', img, `::${name}`, '-'], { encoding: 'latin1' });
      expect(r.status, r.stderr).toBe(0);
      texts.push({ where: `seed.img ::${name}`, text: r.stdout });
      if (name === 'user-data') for (const t of userDataTexts(r.stdout)) texts.push({ where: 'seed.img ::user-data (decoded)', text: t });
    }
    return { d, files, texts };
  }

  it('user-data and seed.img hold no private-key armour and no secret value, in any encoding', async () => {
    const { d, files, texts } = await seedOf(true);
    // the Flux bootstrap's secret manifest is sealed with the rest: not in the bundle, not in user-data
    expect(files.map((f) => f.path)).toContain('bundle/sealed-secrets.jwe');
    expect(files.map((f) => f.path)).toContain('bundle/flux/edgeforge-flux-sync.yaml');
    expect(files.filter((f) => f.path.startsWith('bundle/secrets/') || f.path === 'bundle/flux/edgeforge-flux-secrets.yaml')).toEqual([]);
    expect(texts.find((t) => t.where === 'user-data')!.text).toContain('/var/lib/edgeforge/bundle/sealed-secrets.jwe');
    const values = secretValues(fixedSecretsFor(d));
    expect(values.length).toBeGreaterThan(10);
    expect(leaks(texts, values)).toEqual([]);
  }, 60_000);

  it('the same scan finds them on a site without a saved advertisement (the scanner works)', async () => {
    const { d, texts } = await seedOf(false);
    const found = leaks(texts, secretValues(fixedSecretsFor(d)));
    expect(found.some((f) => /OPENSSH PRIVATE KEY/.test(f))).toBe(true);
    expect(found.some((f) => /PGP PRIVATE KEY/.test(f))).toBe(true);
    expect(found.some((f) => f.startsWith('seed.img ::user-data'))).toBe(true);
    // the deploy key inside the Flux Secret, base64-encoded
    const deployB64 = Buffer.from(fixedSecretsFor(d).deployKey!.privateKey).toString('base64');
    expect(texts.some((t) => t.text.includes(deployB64)) || texts.some((t) => t.text.includes(fixedSecretsFor(d).deployKey!.privateKey.split('\n')[1]))).toBe(true);
  }, 60_000);
});
