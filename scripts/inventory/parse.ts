// Bytes → YAML document with positions, refusing hostile input with a positioned message
// instead of a stack trace, a hang or a memory blow-up.
import { isAlias, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { Locator } from './problems.ts';
import { type Problem } from '../util/errors.ts';

/** An inventory for 10,000 devices is about 3 MiB; anything far larger is a mistake or an attack. */
export const MAX_INVENTORY_BYTES = 32 * 1024 * 1024;
/** Aliases are legitimate for sharing a block or two; thousands are an alias bomb. */
export const MAX_ALIASES = 200;
const MAX_DEPTH = 64;

export interface Parsed {
  doc: Document.Parsed;
  locator: Locator;
  data: unknown;
  text: string;
}

export type ParseResult = { ok: true; parsed: Parsed } | { ok: false; problems: Problem[] };

/** Position of the first byte that is not valid UTF-8, or -1. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const b = buf[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) ((need = 1), (min = 0x80));
    else if (b >= 0xe0 && b <= 0xef) ((need = 2), (min = 0x800));
    else if (b >= 0xf0 && b <= 0xf4) ((need = 3), (min = 0x10000));
    else return i;
    if (i + need >= n) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function lineColOfByte(buf: Uint8Array, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (buf[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  // column in characters: count UTF-8 lead bytes between line start and offset
  let col = 1;
  for (let i = lineStart; i < offset; i++) if ((buf[i] & 0xc0) !== 0x80) col++;
  return { line, col };
}

export function parseInventory(bytes: Uint8Array): ParseResult {
  const fail = (problems: Problem[]): ParseResult => ({ ok: false, problems });
  const refused = refuseBytes(bytes);
  if (refused) return fail([refused]);
  let text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = ' ' + text.slice(1); // keep columns stable while dropping the BOM
  const notText = refuseText(text);
  if (notText) return fail([notText]);
  const lines = new LineCounter();
  const yaml = parseYaml(text, lines);
  if ('problems' in yaml) return fail(yaml.problems);
  const { doc } = yaml;
  const bomb = refuseBombs(doc, lines);
  if (bomb) return fail([bomb]);
  let data: unknown;
  try {
    // every alias is still bounded: the expanded size of each one is checked by yaml
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return fail([{ ...lines.linePos(findAlias(doc)), message: `YAML: ${(err as Error).message}` }]);
  }
  const locator = new Locator(doc, lines);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return fail([{ ...locator.pos([]), message: 'the inventory must be a mapping with keys version, fleet, profiles, k3s, gitops, admins, regions' }]);
  }
  return { ok: true, parsed: { doc, locator, data, text } };
}

/** Too large, or not UTF-8: refused before anything parses it. */
function refuseBytes(bytes: Uint8Array): Problem | undefined {
  if (bytes.length > MAX_INVENTORY_BYTES) {
    return { line: 1, col: 1, message: `file is ${(bytes.length / 1048576).toFixed(1)} MiB; an inventory may be at most ${MAX_INVENTORY_BYTES / 1048576} MiB (10,000 devices take about 3 MiB)` };
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad < 0) return undefined;
  const { line, col } = lineColOfByte(bytes, bad);
  return { line, col, message: `byte 0x${bytes[bad].toString(16).padStart(2, '0')} is not valid UTF-8; save the file as UTF-8` };
}

/** Nothing but comments, or a NUL byte (a binary file). */
function refuseText(text: string): Problem | undefined {
  // line by line: one regex over the whole text, /^(\s*#.*\n?)*\s*$/, backtracked exponentially in the length of a
  // leading comment block (0.3 s for the example's header, minutes for 30 comment lines before the first key)
  if (text.split('\n').every((line) => /^\s*(#|$)/.test(line))) {
    return { line: 1, col: 1, message: 'the inventory is empty; start from inventory/example.yaml or run `edgeforge inventory generate`' };
  }
  if (!text.includes('\0')) return undefined;
  const off = text.indexOf('\0');
  const before = text.slice(0, off);
  const line = before.split('\n').length;
  return { line, col: off - before.lastIndexOf('\n'), message: 'NUL byte in the file: this is not a text inventory' };
}

/** The YAML document, or every syntax error at its position (one, when the nesting overflowed the parser). */
function parseYaml(text: string, lines: LineCounter): { doc: Document.Parsed } | { problems: Problem[] } {
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true, version: '1.2', stringKeys: false });
  } catch (err) {
    return { problems: [{ line: 1, col: 1, message: `cannot parse YAML: ${(err as Error).message}` }] };
  }
  const problems: Problem[] = [];
  for (const e of doc.errors) {
    const { line, col } = lines.linePos(e.pos[0]);
    let msg = e.message.split('\n')[0];
    if (/call stack/i.test(msg)) return { problems: [{ line, col, message: `nesting deeper than ${MAX_DEPTH} levels: this is not an inventory` }] };
    if (e.code === 'DUPLICATE_KEY') msg = 'duplicate key: each key may appear once in a mapping (the second would silently replace the first)';
    problems.push({ line, col, message: `YAML: ${msg}` });
  }
  return problems.length ? { problems } : { doc };
}

/**
 * Count aliases and nesting before expanding anything: toJS on a "billion laughs" document
 * would otherwise build an enormous object.
 */
function refuseBombs(doc: Document.Parsed, lines: LineCounter): Problem | undefined {
  let aliases = 0;
  let firstAlias = 0;
  let tooDeep = -1;
  visit(doc, {
    Alias(_k, node) {
      if (aliases++ === 0) firstAlias = node.range?.[0] ?? 0;
    },
    Node(_k, node, path) {
      if (tooDeep < 0 && path.length > MAX_DEPTH * 2) tooDeep = node.range?.[0] ?? 0;
    },
  });
  if (aliases > MAX_ALIASES) return { ...lines.linePos(firstAlias), message: `${aliases} YAML aliases (at most ${MAX_ALIASES}): refusing a possible alias bomb` };
  if (tooDeep >= 0) return { ...lines.linePos(tooDeep), message: `nesting deeper than ${MAX_DEPTH} levels: this is not an inventory` };
  return undefined;
}

function findAlias(doc: Document.Parsed): number {
  let off = 0;
  visit(doc, (_k, node) => {
    if (isAlias(node)) {
      off = node.range?.[0] ?? 0;
      return visit.BREAK;
    }
  });
  return off;
}
