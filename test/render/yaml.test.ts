// The fast emitter must parse back (yaml library, YAML 1.1 and 1.2) to exactly the values the yaml library's
// stringify produced, for every Flux document of the example fleet and of a generated 200-device fleet.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { emitYaml, yamlLibraryToYaml } from '../../scripts/render/yaml.ts';
import { fluxSecretObjects } from '../../scripts/render/flux/secrets.ts';
import { fluxSyncObjects } from '../../scripts/render/flux/sync.ts';
import { fluxComponents } from '../../scripts/render/flux/components.ts';
import { sizingClassFor } from '../../scripts/render/flux/sizing.ts';
import { toFluxSecrets } from '../../scripts/render/flux/flux-stage.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { exampleFleet, fixedSecretsFor, withFlux } from '../../scripts/testkit/fixed-secrets.ts';

const parse = (s: string, version: '1.1' | '1.2') => YAML.parse(s, { version, maxAliasCount: -1 });

function roundTrips(doc: unknown, strict = true): void {
  const fast = emitYaml(doc);
  expect(fast, 'emitter declined a plain document').toBeDefined();
  const ref = yamlLibraryToYaml(doc);
  for (const v of ['1.1', '1.2'] as const) {
    // strict: same values as the yaml library's output. The edge-case tests compare with the input only: the yaml
    // library itself writes "<<" and "0o17" plain in 1.1 mode, which read back as a merge key / the number 15.
    if (strict) expect(parse(fast!, v)).toEqual(parse(ref, v));
    expect(parse(fast!, v)).toEqual(JSON.parse(JSON.stringify(doc)));
  }
  expect(emitYaml(doc)).toBe(fast); // deterministic
}

function fluxDocs(fleet: Fleet): unknown[] {
  const docs: unknown[] = [];
  for (const d of fleet.active) {
    docs.push(...fluxSecretObjects(d, fleet, toFluxSecrets(d.id, fixedSecretsFor(d))), ...fluxSyncObjects(d, fleet));
  }
  for (const cls of new Set(fleet.active.map((d) => sizingClassFor(d.profile.ramMiB)))) docs.push(...fluxComponents(fleet, cls));
  return docs;
}

describe('fast YAML emitter', () => {
  it('round-trips every Flux document of the example fleet', async () => {
    const docs = fluxDocs(withFlux(await exampleFleet()));
    expect(docs.length).toBeGreaterThan(5);
    docs.forEach((d) => roundTrips(d));
  });

  it('round-trips every Flux document of a generated 200-device fleet', () => {
    const fleet = withFlux(loadInventoryBytes(Buffer.from(generateInventory(200)), 'gen-200.yaml'));
    const docs = fluxDocs(fleet);
    expect(docs.length).toBeGreaterThan(400);
    docs.forEach((d) => roundTrips(d));
  });

  it('quotes strings that would read as something else and keeps multi-line text exact', () => {
    const tricky = [
      '',
      ' lead',
      'trail ',
      'a: b',
      'a #b',
      '#x',
      'yes',
      'No',
      'on',
      'OFF',
      'y',
      'n',
      'true',
      'False',
      'null',
      'Null',
      '~',
      '0600',
      '0x1F',
      '0o17',
      '0b101',
      '1e3',
      '1_000',
      '.5',
      '+1',
      '-1',
      '.',
      '.inf',
      '-.Inf',
      '.NaN',
      '12:30:45',
      '2024-01-02',
      '<<',
      '=',
      '-',
      '- x',
      '? x',
      ': x',
      'x:',
      '@x',
      '`x',
      '%x',
      '!tag',
      '&a',
      '*a',
      '|',
      '>',
      '[a]',
      '{a}',
      '"q"',
      "'s'",
      'a,b',
      'tab\there',
      'line\nbreak',
      'pem\n',
      'two\n\n',
      'no-newline\nend',
      '\nleading',
      '  indented\nx\n',
      'x\n  \ny\n',
      'x\n\t\n',
      'cr\r\nlf',
      'nul\u0000',
      'del\u007f',
      'nel\u0085',
      'ls\u2028',
      'bom\ufeff',
      'é ü 日本',
      'emoji 🚀',
      'x\n\n\n',
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n',
      '-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxcLYBGVa\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n',
      'github.com ssh-ed25519 AAAAC3Nza\ngitlab.com ssh-rsa AAAAB3\n',
    ];
    const doc: Record<string, unknown> = { values: tricky, keys: Object.fromEntries(tricky.map((s, i) => [s, i])) };
    doc.nested = { list: [{ a: 1, b: [{ c: 'yes', d: [] }, [], {}, [1, [2, 'x\ny\n']]], e: {} }, tricky.map((s) => ({ s, m: { s } }))], empty: {}, none: [] };
    doc.numbers = [0, 1, -5, 3.25, 1e6, 600, null, true, false];
    roundTrips(doc, false);
  });

  it('round-trips random documents', () => {
    // deterministic pseudo-random generator so a failure reproduces
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const alphabet = ['a', 'Z', '0', '9', ' ', ':', '#', '-', '\n', '\t', '"', "'", '.', ',', '|', '>', '[', '{', '&', '*', '!', '%', '@', 'é', '\u2028', '\r', 'y', 'e', '_', '~'];
    const str = () => Array.from({ length: rnd(12) }, () => alphabet[rnd(alphabet.length)]).join('');
    const value = (depth: number): unknown => {
      const k = rnd(depth > 3 ? 4 : 7);
      if (k === 0) return str();
      if (k === 1) return rnd(2) ? rnd(100000) : rnd(1000) / 8;
      if (k === 2) return [true, false, null][rnd(3)];
      if (k === 3) return str() + '\n' + str() + '\n'.repeat(rnd(3));
      if (k === 4) return Array.from({ length: rnd(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), value(depth + 1)]));
    };
    for (let i = 0; i < 400; i++) roundTrips({ root: value(0), [str()]: value(1) }, false);
  });

  it('declines what it cannot write exactly (the caller falls back to the yaml library)', () => {
    expect(emitYaml({ a: new Date(0) })).toBeUndefined();
    expect(emitYaml({ a: [undefined] })).toBeUndefined();
    expect(emitYaml({ a: 1e21 })).toBeUndefined();
    expect(emitYaml({ a: Number.NaN })).toBeUndefined();
    expect(emitYaml({ ['k'.repeat(2000)]: 1 })).toBeUndefined();
    expect(emitYaml(['not', 'a', 'map'])).toBeUndefined();
    expect(emitYaml({ a: undefined, b: 1 })).toBe('b: 1\n');
  });
});
