// The one YAML writer for everything edgeforge emits: the seed (user-data, network-config, meta-data), K3s's
// config and registries, Flux documents, the GitOps scaffold and the YAML blocks of `plan`.
//
// Correct by construction: a string is written plain only when it is on a conservative whitelist that every
// YAML 1.1 and 1.2 reader (PyYAML as cloud-init uses it, Go's yaml.v2/v3 in K3s and Kubernetes, the `yaml`
// library) reads back as that same string; everything else is double-quoted with JSON-style escapes plus
// \uXXXX for what YAML 1.1 does not accept raw (C1 controls, DEL, NEL, U+2028/9, BOM). Multi-line text
// becomes a literal block only when that is exact (see literalOk); otherwise it is quoted too.
// Fast: yaml.stringify costs ~2 ms per Flux document set, x2,000 devices. What this writer does not
// handle exactly (keys over 1,000 characters, non-plain objects, numbers like 1e21) goes to the yaml library.
import YAML from 'yaml';

// Plain strings: start with a letter, "_" or "/", continue with a small safe set (no blank, no quote, no
// "#", "!", "&", "*", "[", "{", "|"), never end in ":" (a mapping key) and are never one of the YAML 1.1
// booleans/nulls (y, n, yes, no, on, off, true, false, null).
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./@%+=,:<>-]*$/;
const RESERVED = /^(y|n|yes|no|on|off|true|false|null)$/i;
// Or a digit followed by letters and digits only, with a letter no number syntax uses (not a-f, o, x):
// Kubernetes quantities and durations such as 128Mi, 500m, 5m, 1h30m. No ".", "_", ":", "-", "+" so no
// float, sexagesimal, date or signed form can match.
const UNIT = /^[0-9][A-Za-z0-9]*$/;
const UNIT_LETTER = /[g-np-wyzG-NP-WYZ]/;
// characters YAML 1.1 does not accept raw in a stream or reads as line breaks: escaped inside double quotes
const ESCAPE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

/** Plain data the writer takes (documents may also be typed more loosely: it checks at run time). */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [k: string]: YamlValue | undefined };

class Unsupported extends Error {}

/** A double-quoted YAML scalar: always safe, for any string. */
export function quoted(s: string): string {
  return JSON.stringify(s).replace(ESCAPE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function plainOk(s: string): boolean {
  if (PLAIN.test(s)) return !s.endsWith(':') && !RESERVED.test(s);
  return UNIT.test(s) && UNIT_LETTER.test(s);
}

/** One string as a single-line YAML scalar: plain where that is certainly safe, else double-quoted. */
export function yamlString(s: string): string {
  return plainOk(s) ? s : quoted(s);
}

function key(k: string): string {
  // YAML limits implicit keys to 1024 characters: longer ones need "? " (the yaml library writes those)
  if (k.length > 1000) throw new Unsupported();
  return yamlString(k);
}

function num(v: number): string {
  const s = String(v);
  if (!Number.isFinite(v) || Object.is(v, -0) || /e/i.test(s)) throw new Unsupported();
  return s;
}

// A literal block keeps the bytes exactly when: there is a line break, the first line is non-empty and does
// not start with a blank (indentation is detected from it), no line is whitespace-only (readers disagree on
// those), and nothing is a control character, CR, or a YAML 1.1 line break (NEL, U+2028/9).
const NOT_LITERAL = /[\r\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]|\n[ \t]+(\n|$)/;
function literalOk(s: string): boolean {
  return s.includes('\n') && s[0] !== '\n' && s[0] !== ' ' && s[0] !== '\t' && !NOT_LITERAL.test(s);
}

function literal(s: string, indent: string): string {
  // chomping: "-" no final newline, "" exactly one, "+" keep them all
  let chomp = '';
  if (!s.endsWith('\n')) chomp = '-';
  else if (s.endsWith('\n\n')) chomp = '+';
  const body = chomp === '-' ? s : s.slice(0, -1);
  return (
    `|${chomp}\n` +
    body
      .split('\n')
      .map((l) => (l.length ? indent + l : ''))
      .join('\n')
  );
}

function isPlainObject(v: object): boolean {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function scalar(v: unknown, indent: string): string | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return num(v);
    case 'string':
      return literalOk(v) ? literal(v, indent) : yamlString(v);
    case 'object':
      return undefined;
    default:
      throw new Unsupported();
  }
}

function entries(v: object): [string, unknown][] {
  if (!isPlainObject(v)) throw new Unsupported();
  return Object.entries(v).filter(([, x]) => x !== undefined);
}

// `lead` precedes the value on its first line ("key:" or "-"); nested content is at indent + 2
function emit(v: unknown, indent: string, out: string[], lead: string): void {
  const s = scalar(v, indent + '  ');
  if (s !== undefined) return void out.push(`${lead} ${s}`);
  if (Array.isArray(v)) {
    if (v.length === 0) return void out.push(`${lead} []`);
    out.push(lead);
    for (const item of v) emitItem(item, indent + '  ', out);
    return;
  }
  const es = entries(v as object);
  if (es.length === 0) return void out.push(`${lead} {}`);
  out.push(lead);
  for (const [k, x] of es) emit(x, indent + '  ', out, `${indent}  ${key(k)}:`);
}

// a list item at `indent`: "- " then the value, whose nested content sits at indent + 2
function emitItem(item: unknown, indent: string, out: string[]): void {
  const dash = `${indent}-`;
  if (item === undefined) throw new Unsupported();
  if (item === null || typeof item !== 'object' || (Array.isArray(item) && item.length === 0)) return emit(item, indent, out, dash);
  if (Array.isArray(item)) {
    out.push(dash);
    for (const x of item) emitItem(x, indent + '  ', out);
    return;
  }
  const es = entries(item);
  if (es.length === 0) return void out.push(`${dash} {}`);
  // first key on the dash line, the rest aligned under it
  const sub: string[] = [];
  for (const [k, x] of es) emit(x, indent + '  ', sub, `${indent}  ${key(k)}:`);
  sub[0] = `${dash} ${sub[0].slice(indent.length + 2)}`;
  for (const l of sub) out.push(l);
}

/** The fast path: one document for a top-level plain mapping, or undefined if it can't write it exactly. */
export function emitYaml(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  try {
    const es = entries(doc);
    if (es.length === 0) return '{}\n';
    const out: string[] = [];
    for (const [k, v] of es) emit(v, '', out, `${key(k)}:`);
    return out.join('\n') + '\n';
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
}

/** The yaml library's rendering (YAML 1.1, so "on"/"yes" come out quoted): the fallback, and the reference in tests. */
export function yamlLibraryToYaml(doc: unknown): string {
  return YAML.stringify(doc, { version: '1.1', lineWidth: 0, minContentWidth: 0, indentSeq: true, aliasDuplicateObjects: false });
}

/** One document (a mapping), ending in a newline. Undefined values are left out. */
export function toYaml(doc: unknown): string {
  return emitYaml(doc) ?? yamlLibraryToYaml(doc);
}

// in a comment: every line break YAML 1.1 knows starts a new "# " line; other controls are shown as \uXXXX
// (PyYAML refuses a stream holding them raw, even inside a comment)
const COMMENT_BREAK = /\r\n|[\n\r\u0085\u2028\u2029]/;
const COMMENT_ESCAPE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufeff\ufffe\uffff]/g;

/** "# " before every line of a header (multi-line text stays comments; nothing in it can end the comment). */
export function yamlComment(text: string): string {
  const lines = text
    .trimEnd()
    .split(COMMENT_BREAK)
    .map((l) => l.replace(COMMENT_ESCAPE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')));
  return lines.map((l) => (l ? `# ${l}` : '#')).join('\n') + '\n';
}

/** A multi-document stream: optional comment header, documents separated by "---". */
export function toYamlStream(docs: unknown[], header?: string): string {
  return (header ? yamlComment(header) : '') + docs.map((d) => `---\n${toYaml(d)}`).join('');
}

/** Parse a multi-document stream; null documents (stray "---") dropped. Throws with the first error. */
export function parseYamlStream(text: string, what: string): Record<string, unknown>[] {
  const docs = YAML.parseAllDocuments(text);
  const out: Record<string, unknown>[] = [];
  for (const d of docs) {
    if ('errors' in d && d.errors.length) throw new Error(`${what}: not valid YAML: ${d.errors[0].message}`);
    const js = d.toJS({ maxAliasCount: -1 });
    if (js == null) continue;
    if (typeof js !== 'object' || Array.isArray(js)) throw new Error(`${what}: every YAML document must be a Kubernetes object`);
    out.push(js as Record<string, unknown>);
  }
  return out;
}
