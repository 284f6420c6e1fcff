// validate must refuse hostile input with exact positions: never a stack trace, a hang or a blow-up.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { InventoryError } from '../../scripts/util/errors.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');

function problems(text: string | Uint8Array): string[] {
  try {
    loadInventoryBytes(typeof text === 'string' ? Buffer.from(text) : text, 'inv.yaml');
  } catch (err) {
    if (err instanceof InventoryError) return err.format().split('\n');
    throw err;
  }
  return [];
}

/** line:col of the first occurrence of `needle` (1-based), optionally offset within it */
function posOf(text: string, needle: string, within = 0): string {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`fixture lacks ${needle}`);
  const before = text.slice(0, i + within);
  const line = before.split('\n').length;
  const col = before.length - before.lastIndexOf('\n');
  return `${line}:${col}`;
}

describe('hostile input', () => {
  it('empty file', () => {
    expect(problems('')).toEqual(['inv.yaml:1:1: the inventory is empty; start from inventory/example.yaml or run `edgeforge inventory generate`']);
    expect(problems('# only a comment\n\n')).toHaveLength(1);
    expect(problems('  # indented\r\n\t\n# x')).toHaveLength(1);
  });

  it('a long comment header is read in linear time (no regex backtracking)', () => {
    const t0 = performance.now();
    expect(problems('# a comment line\n'.repeat(5000) + 'version: [\n').length).toBeGreaterThan(0);
    expect(problems('# a comment line\n'.repeat(5000))).toHaveLength(1);
    expect(performance.now() - t0).toBeLessThan(2000); // was exponential: 24 lines took 2.7 s, 30 would take minutes
  });

  it('non-UTF-8 bytes, with the position of the first bad byte', () => {
    const bytes = Buffer.concat([Buffer.from('version: 1\nfleet:\n  name: ab'), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]);
    expect(problems(bytes)).toEqual(['inv.yaml:3:11: byte 0xc3 is not valid UTF-8; save the file as UTF-8']);
    expect(problems(Buffer.from([0xff, 0xfe, 0x00]))[0]).toMatch(/^inv\.yaml:1:1: byte 0xff is not valid UTF-8/);
  });

  it('YAML syntax errors', () => {
    const p = problems('version: 1\nfleet: [a, b\nprofiles: }\n');
    expect(p.length).toBeGreaterThan(0);
    expect(p.every((l) => /^inv\.yaml:\d+:\d+: YAML: /.test(l))).toBe(true);
    expect(p.some((l) => l.startsWith('inv.yaml:3:'))).toBe(true);
  });

  it('duplicate keys are refused, not silently overwritten', () => {
    const text = example.replace('  branch: main\n', '  branch: main\n  branch: develop\n');
    const p = problems(text);
    expect(p).toEqual([`inv.yaml:${posOf(text, '  branch: develop', 2)}: YAML: duplicate key: each key may appear once in a mapping (the second would silently replace the first)`]);
  });

  it('alias bombs ("billion laughs") are refused quickly', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(
        `${cur}: &${cur} [${Array(9)
          .fill('*' + prev)
          .join(',')}]`,
      );
    }
    const t0 = Date.now();
    const p = problems(lines.join('\n') + '\n');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^inv\.yaml:2:\d+: .*alias/i);
  });

  it('deep nesting does not overflow the stack', () => {
    const p = problems('x: ' + '['.repeat(50000) + '\n');
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^inv\.yaml:1:\d+: /);
  });

  it('very large files are refused without parsing', () => {
    const big = Buffer.alloc(33 * 1024 * 1024, 0x20);
    const t0 = Date.now();
    const p = problems(big);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p[0]).toMatch(/^inv\.yaml:1:1: file is 33\.0 MiB; an inventory may be at most 32 MiB/);
  });

  it('ids that could escape a directory', () => {
    for (const bad of ['../../etc', 'a/b', '..', 'UPPER', '-lead', 'x'.repeat(64), 'sp ace']) {
      const text = example.replace('id: brno1-dock-003', `id: ${JSON.stringify(bad)}`);
      const p = problems(text);
      expect(p, bad).toHaveLength(1);
      expect(p[0]).toContain(`inv.yaml:${posOf(text, `id: ${JSON.stringify(bad)}`, 4)}: `);
      expect(p[0]).toContain('device id must be a DNS label');
    }
  });

  it('NUL bytes and a top-level list', () => {
    expect(problems('version: 1\n\0\n')[0]).toMatch(/^inv\.yaml:2:1: NUL byte/);
    expect(problems('- a\n- b\n')[0]).toMatch(/^inv\.yaml:1:1: the inventory must be a mapping/);
  });
});
