// Property test of the one YAML writer (scripts/render/yaml.ts): thousands of generated strings — YAML indicators,
// booleans/nulls/numbers/dates of YAML 1.1 and 1.2, C0/C1 controls, NBSP, tabs, CRLF, leading/trailing blanks,
// indented multi-line text, very long strings — must read back to exactly the same values with PyYAML (the parser
// cloud-init uses, many documents per python process) and with the yaml library (YAML 1.1 and 1.2).
// 1. the writer itself: any string as a value, a key, a list item, a file's content in user-data;
// 2. every rendered document (user-data, network-config, meta-data, K3s config and registries, Flux documents) for
//    fleets whose every free-string position holds such strings — only values the inventory schema accepts.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { toYaml, toYamlStream } from '../../scripts/render/yaml.ts';
import { renderUserData } from '../../scripts/render/seed/user-data.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { InventoryError } from '../../scripts/util/errors.ts';
import { UserSchema, RegistryMirrorSchema, GitopsSchema, cascadeShape, NetworkSchema } from '../../scripts/inventory/schema.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { BUNDLE_DIR } from '../../scripts/device/layout.ts';
import { fluxGitUrl } from '../../scripts/render/flux/sync.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
import { fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
const HAVE_TOOLS = requireTools(['python3'], 'test/render/yaml-property.test.ts');

// --- deterministic generator ---
let seed = 20261202;
const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
const pick = <T>(xs: readonly T[]) => xs[rnd(xs.length)];

const FRAGMENTS = [
  ':',
  ': ',
  ' :',
  '#',
  ' #',
  '@',
  '%',
  '!',
  '&',
  '*',
  '?',
  '|',
  '>',
  '-',
  '- ',
  '[',
  ']',
  '{',
  '}',
  ',',
  "'",
  '"',
  '`',
  '---',
  '...',
  '\u0080',
  '\u0085',
  '\u009f',
  '\u00a0',
  '\t',
  ' ',
  '  ',
  '\n',
  '\r\n',
  '\r',
  '\\',
  '/',
  '.',
  '=',
  '<<',
  '~',
  '+',
  '_',
  'yes',
  'No',
  'on',
  'OFF',
  'null',
  'Null',
  'y',
  'n',
  'true',
  'False',
  '1',
  '0600',
  '1e3',
  '0x1F',
  '0o17',
  '0b101',
  '.5',
  '-1',
  '+1',
  '12:30',
  '12:30:45',
  '2024-01-02',
  '2024-01-02T10:00:00Z',
  '.inf',
  '.NaN',
  '1_000',
  'é',
  'ü',
  '日本',
  '🚀',
  '\u2028',
  '\u2029',
  '\ufeff',
  '\u0000',
  '\u0007',
  '\u001b',
  '\u007f',
  '\u000b',
  '\u000c',
  'abc',
  'Z',
  'key',
  'value',
  'ssh',
  'AAAA',
];
const WHOLE = [
  '',
  ' ',
  '  lead',
  'trail ',
  'a: b',
  'a #b',
  'x:',
  'yes',
  'no',
  'on',
  'off',
  'null',
  '~',
  'y',
  'n',
  'true',
  '1.0',
  '0600',
  '12:30',
  '2024-01-02',
  '---',
  '...',
  '- x',
  '? x',
  '@x',
  '%x',
  '!x',
  '&x',
  '*x',
  '|',
  '>',
  '[x]',
  '{x}',
  "'x'",
  '"x"',
  '#x',
  '\u0080',
  ' \n  indented\n',
  '  indented\n    more\n',
  'a\r\nb\r\n',
  'x\n\n\n',
  '\n',
  '\n\nx',
  'tab\there',
  'nbsp\u00a0',
  '\u00a0lead',
];

function anyString(): string {
  const k = rnd(20);
  if (k === 0) return pick(WHOLE);
  if (k === 1) return 'x'.repeat(1000 + rnd(5000)) + pick(FRAGMENTS);
  if (k === 2)
    return Array.from({ length: 2 + rnd(5) }, () => ' '.repeat(rnd(4)) + Array.from({ length: rnd(5) }, () => pick(FRAGMENTS)).join('')).join(pick(['\n', '\r\n'])) + pick(['', '\n', '\n\n']);
  return Array.from({ length: rnd(7) }, () => pick(FRAGMENTS)).join('');
}

/** A string the given schema accepts: generated, then cut down to what the schema allows (or the fallback). */
function accepted(schema: { safeParse(v: unknown): { success: boolean } }, make: () => string, fallback: string): string {
  for (let i = 0; i < 20; i++) {
    const s = make();
    if (schema.safeParse(s).success) return s;
  }
  return fallback;
}

// --- PyYAML, many documents per process ---
const PY = `
import sys, json, yaml
def norm(o):
    if isinstance(o, dict):
        return {(k if isinstance(k, str) else '\\u0000nonstr:' + repr(k)): norm(v) for k, v in o.items()}
    if isinstance(o, list):
        return [norm(x) for x in o]
    if o is None or isinstance(o, (str, bool, int, float)):
        return o
    return {'\\u0000nonjson': repr(o)}
out = []
for t in json.load(open(sys.argv[1], encoding='utf-8')):
    try:
        out.append({'docs': [norm(d) for d in yaml.safe_load_all(t)]})
    except Exception as e:
        out.append({'error': str(e)[:300]})
json.dump(out, sys.stdout)
`;
const dir = mkdtempSync(path.join(tmpdir(), 'yaml-prop-'));
function pyyaml(texts: string[]): ({ docs: unknown[] } | { error: string })[] {
  const f = path.join(dir, `batch-${seed}.json`);
  writeFileSync(f, JSON.stringify(texts));
  return JSON.parse(execFileSync(tool('python3'), ['-c', PY, f], { maxBuffer: 1 << 30, encoding: 'utf8' }));
}
function yamlLib(text: string, version: '1.1' | '1.2'): unknown[] {
  return YAML.parseAllDocuments(text, { version, uniqueKeys: true }).map((d) => {
    if (d.errors.length) throw new Error(d.errors[0].message);
    return d.toJS({ maxAliasCount: -1 });
  });
}
/** every parser's documents for each text (null documents from a leading comment-only stream dropped) */
function parseAll(texts: string[]): unknown[][][] {
  const py = pyyaml(texts);
  return texts.map((t, i) => {
    const p = py[i];
    if ('error' in p) throw new Error(`PyYAML refused document ${i}: ${p.error}\n${t.slice(0, 400)}`);
    return [p.docs, yamlLib(t, '1.1'), yamlLib(t, '1.2')].map((ds) => ds.filter((d) => d !== null));
  });
}

describe.runIf(HAVE_TOOLS)('the YAML writer, property-tested against PyYAML and the yaml library', () => {
  it('writes any string exactly: as a value, a key, a list item, nested, and as a file in user-data', () => {
    const docs: unknown[] = [];
    let strings = 0;
    for (let i = 0; i < 250; i++) {
      const vals = Array.from({ length: 12 }, anyString);
      strings += vals.length * 3;
      docs.push({
        value: vals[0],
        [vals[1]]: vals[2],
        list: vals.slice(3, 7),
        nested: { deeper: [{ [vals[7]]: vals[8], other: [vals[9]] }], keys: Object.fromEntries(vals.map((v, j) => [v, j])) },
        file: vals[10],
        lines: vals[11] + '\n',
      });
    }
    const texts = docs.map((d) => toYaml(d));
    texts.push(toYamlStream(docs.slice(0, 20), anyString() + '\n' + WHOLE.join('\n'))); // a stream with a hostile comment header
    const parsed = parseAll(texts);
    const want = (d: unknown) => JSON.parse(JSON.stringify(d));
    docs.forEach((d, i) => parsed[i].forEach((ds) => expect(ds).toEqual([want(d)])));
    parsed.at(-1)!.forEach((ds) => expect(ds).toEqual(docs.slice(0, 20).map(want)));
    expect(strings).toBeGreaterThan(5000);
  });

  it('carries any file content byte for byte through user-data write_files', () => {
    const contents = Array.from({ length: 400 }, anyString);
    const d = loadInventoryBytes(Buffer.from(generateInventory(1)), 'one.yaml').active[0];
    const ud = renderUserData({ device: d, fleet: { name: 'fleet' }, bundle: [], system: contents.map((text, i) => ({ path: `/etc/edgeforge/f${i}`, text, mode: 0o644 })) });
    for (const [doc] of parseAll([ud])[0]) {
      const files = (doc as unknown as { write_files: { path: string; content: string }[] }).write_files;
      expect(files.map((f) => f.content)).toEqual(contents);
    }
  });
});

// --- fleets with hostile strings in every free-string position the schema allows ---

const keyB64 = 'AAAAC3NzaC1lZDI1NTE5AAAAIE9u/Jy1N3N4jyA9HABcdi17Gpm7F1NmG3o544SYLIfl';
const HOSTY = [
  'on',
  'yes',
  'no',
  'null',
  'y',
  'n',
  'true',
  '1e3',
  '0600',
  '12',
  '0x1f',
  'inf',
  'nan',
  '1.5',
  '12.30',
  '2024-01-02',
  '12:30',
  '::1',
  'fe80::1',
  '10.0.0.1',
  'on.off',
  'yes.example',
  'a-b.c',
];
const hostLike = () => (rnd(2) ? pick(HOSTY) : Array.from({ length: 1 + rnd(3) }, () => pick(HOSTY).replace(/[:]/g, '')).join('.'));
const sshKey = () =>
  accepted(
    UserSchema.shape.sshAuthorizedKeys.element,
    () => `${pick(['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'sk-ssh-ed25519@openssh.com'])} ${keyB64}${rnd(5) ? ' ' + anyString().replace(/[\r\n]/g, '') : ''}`,
    `ssh-ed25519 ${keyB64} x:`,
  );
const userName = () =>
  accepted(UserSchema.shape.name, () => pick(['yes', 'no', 'on', 'off', 'null', 'y', 'n', 'true', 'false', '_', 'nan', 'inf']) + (rnd(3) ? '' : pick(['', '1', '-', '_x', 'e3'])), 'ops');
const labelKey = () => accepted(cascadeShape.labels.unwrap().keyType, () => (rnd(3) ? '' : 'example.com/') + pick(HOSTY).replace(/[:]/g, '') + pick(['', '_', '.x', '-1']), 'k');
const labelValue = () => accepted(cascadeShape.labels.unwrap().valueType, () => pick([...HOSTY, '', '1_000', 'a.b_c-d']).replace(/[:]/g, ''), 'v');
const ntp = () => accepted(cascadeShape.ntp.unwrap().element, hostLike, 'time.example');
const search = () => accepted(NetworkSchema.shape.search.unwrap().element, hostLike, 'example.com');
const registry = () => accepted(RegistryMirrorSchema.shape.registries.unwrap().element, () => pick([...HOSTY, '*', 'docker.io', 'registry.local:5000']), 'docker.io');
const mirrorUrl = () =>
  accepted(RegistryMirrorSchema.shape.url, () => `${pick(['http', 'https'])}://${anyString().replace(/[\s\u0000-\u001f\u007f-\u009f\ufeff]/g, '') || 'h'}`, 'https://mirror.example:5000');
const branch = () =>
  accepted(
    GitopsSchema.shape.branch.unwrap(),
    () => pick(['yes', 'on', 'null', '1e3', '0600', '#x', '@x', '%x', '!x', '&x', '|x', '>x', '{x}', "'x", '"x', 'x\u0080y', 'é', 'nbsp\u00a0x', 'release/1.0', '12.30', '2024-01-02']),
    'main',
  );
const gitPath = () => anyString().replace(/[\s\u0000-\u001f\u007f-\u009f\ufeff]/g, '');

interface Expect {
  fleet: Fleet;
  files: Map<string, Map<string, string>>;
}

async function hostileFleet(n: number): Promise<Expect> {
  const inv = YAML.parse(generateInventory(n, { multiNode: 'none' }));
  inv.gitops.branch = branch();
  inv.gitops.url = `ssh://git@git.example.com/${gitPath() || 'x'}`;
  inv.gitops.knownHosts = `git.example.com ssh-ed25519 ${keyB64}`;
  const used = new Set<string>();
  for (const region of Object.values(inv.regions) as { sites: Record<string, { devices: Record<string, unknown>[] }> }[]) {
    for (const site of Object.values(region.sites)) {
      for (const dev of site.devices) {
        const special = ['on', 'yes', 'no', 'null', 'y', 'n', 'true', '1e3', '0600', '12', '0x1f', 'inf', 'nan', '1-2', '2024-01-02'].filter((x) => !used.has(x));
        if (special.length && rnd(2)) dev.id = pick(special);
        used.add(dev.id as string);
        const names = new Set(Array.from({ length: 4 }, userName));
        dev.users = [...names].map((name) => ({ name, sshAuthorizedKeys: Array.from({ length: 1 + rnd(3) }, sshKey), sudo: !!rnd(2) }));
        dev.labels = Object.fromEntries(Array.from({ length: 1 + rnd(6) }, () => [labelKey(), labelValue()]));
        dev.ntp = Array.from({ length: 1 + rnd(3) }, ntp);
        dev.network = { ...((dev.network as object) ?? {}), search: Array.from({ length: 1 + rnd(3) }, search) };
        dev.registryMirror = { url: mirrorUrl(), registries: [...new Set(Array.from({ length: 1 + rnd(3) }, registry))] };
      }
    }
  }
  const text = YAML.stringify(inv, { lineWidth: 0 });
  let fleet: Fleet;
  try {
    fleet = loadInventoryBytes(Buffer.from(text), 'hostile.yaml');
  } catch (e) {
    throw new Error(e instanceof InventoryError ? e.format() : String(e));
  }
  const flux = await prepareFlux(fleet, 'hostile.yaml');
  const files = new Map<string, Map<string, string>>();
  for (const d of fleet.active) files.set(d.id, new Map(renderDevice(fleet, d, fixedSecretsFor(d), flux.render).map((f) => [f.path, Buffer.from(f.bytes).toString('utf8')])));
  return { fleet, files };
}

type Obj = Record<string, any>;

function checkDevice(d: ResolvedDevice, fleet: Fleet, files: Map<string, string>, doc: (p: string) => Obj[]): number {
  let strings = 0;
  const ud = doc('seed/user-data')[0];
  expect(ud.hostname).toBe(d.id);
  expect(ud.users.map((u: Obj) => u.name)).toEqual(d.users.map((u) => u.name));
  expect(ud.users.map((u: Obj) => u.ssh_authorized_keys)).toEqual(d.users.map((u) => u.sshAuthorizedKeys));
  expect(ud.ntp.servers).toEqual(d.ntp);
  // every bundle file rides in write_files exactly (authorized_keys, K3s config, registries, Flux documents)
  const wf = new Map((ud.write_files as Obj[]).map((f) => [f.path, f.content]));
  for (const [p, text] of files) if (p.startsWith('bundle/')) expect(wf.get(`${BUNDLE_DIR}/${p.slice('bundle/'.length)}`), p).toBe(text);
  strings += d.users.reduce((a, u) => a + 1 + u.sshAuthorizedKeys.length, 0) + d.ntp.length + 1;

  const md = doc('seed/meta-data')[0];
  expect(md['local-hostname']).toBe(d.id);
  const nc = doc('seed/network-config')[0];
  const nic = nc.ethernets[d.network.interface];
  expect(nic.match.macaddress).toBe(d.mac);
  expect(nic.nameservers.search).toEqual(d.network.search);
  strings += d.network.search.length;

  const k3s = doc('bundle/k3s/config.yaml')[0];
  expect(k3s['node-name']).toBe(d.id);
  for (const [k, v] of Object.entries(d.labels)) expect(k3s['node-label']).toContain(`${k}=${v}`);
  strings += Object.keys(d.labels).length * 2;
  const reg = doc('bundle/k3s/registries.yaml')[0];
  expect(Object.keys(reg.mirrors)).toEqual([...new Set(d.registryMirror!.registries)]);
  for (const r of d.registryMirror!.registries) expect(reg.mirrors[r].endpoint).toEqual([d.registryMirror!.url]);
  strings += d.registryMirror!.registries.length + 1;

  if (files.has('bundle/flux/edgeforge-flux-sync.yaml')) {
    const sync = doc('bundle/flux/edgeforge-flux-sync.yaml');
    const repo = sync.find((x) => x.kind === 'GitRepository')!;
    expect(repo.spec.url).toBe(fluxGitUrl(fleet.gitops.url));
    expect(repo.spec.ref.branch).toBe(fleet.gitops.branch);
    expect(sync.filter((x) => x.kind === 'Kustomization').some((k) => String(k.spec.path).endsWith(`/${d.id}`))).toBe(true);
    const secrets = doc('bundle/flux/edgeforge-flux-secrets.yaml');
    expect(Buffer.from(secrets[0].data.known_hosts, 'base64').toString()).toBe(fleet.gitops.knownHosts + '\n');
    strings += 2;
  }
  return strings;
}

describe.runIf(HAVE_TOOLS)('rendered documents for fleets with hostile strings in every free-string position', () => {
  it('parse with PyYAML and the yaml library back to exactly the inventory values', async () => {
    const DOCS = [
      'seed/user-data',
      'seed/meta-data',
      'seed/network-config',
      'bundle/k3s/config.yaml',
      'bundle/k3s/registries.yaml',
      'bundle/flux/edgeforge-flux-sync.yaml',
      'bundle/flux/edgeforge-flux-secrets.yaml',
      'bundle/flux/edgeforge-flux-components.yaml',
    ];
    let strings = 0;
    for (let f = 0; f < 8; f++) {
      const { fleet, files } = await hostileFleet(12);
      const texts: string[] = [];
      const index = new Map<string, number>();
      for (const d of fleet.active) {
        for (const p of DOCS) {
          const t = files.get(d.id)!.get(p);
          if (t === undefined) continue;
          index.set(`${d.id}\0${p}`, texts.length);
          texts.push(t);
        }
      }
      const parsed = parseAll(texts);
      for (const d of fleet.active) {
        for (let parser = 0; parser < 3; parser++) {
          strings += checkDevice(d, fleet, files.get(d.id)!, (p) => parsed[index.get(`${d.id}\0${p}`)!][parser] as Obj[]) / 3;
        }
      }
    }
    expect(strings).toBeGreaterThan(1500);
  }, 300_000);

  it('refuses what cannot work on a device, with a clear message', () => {
    const base = YAML.parse(generateInventory(1));
    const bad: [string, (inv: Obj) => void, RegExp][] = [
      ['NTP server with a blank', (inv) => (inv.defaults.ntp = ['time.example server evil']), /NTP server must be a host name or an IP address/],
      ['label value with a blank', (inv) => (inv.defaults.labels = { zone: 'a b' }), /label values are empty or 1-63/],
      ['label key with "="', (inv) => (inv.defaults.labels = { 'a=b': 'c' }), /label keys are Kubernetes label names/],
      ['SSH key with a form feed in its comment', (inv) => (inv.defaults.users[0].sshAuthorizedKeys = [`ssh-ed25519 ${keyB64} a\fb`]), /one OpenSSH public key line/],
      ['registry mirror URL with a C1 control', (inv) => (inv.defaults.registryMirror = { url: 'https://m.example/\u0085x' }), /without blanks or control characters/],
      ['branch with a colon', (inv) => (inv.gitops.branch = 'a:b'), /Git branch name/],
      ['search domain with a newline', (inv) => (inv.defaults.network.search = ['a\nb']), /DNS search domain must be a host name/],
    ];
    for (const [what, edit, msg] of bad) {
      const inv = structuredClone(base);
      edit(inv);
      let err: unknown;
      try {
        loadInventoryBytes(Buffer.from(YAML.stringify(inv)), 'bad.yaml');
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(InventoryError);
      expect((err as InventoryError).format(), what).toMatch(msg);
    }
  });
});
