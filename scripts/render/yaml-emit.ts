// Fast deterministic YAML emitter for plain data (maps, arrays, strings, finite numbers, booleans, null).
// Why: yaml.stringify costs ~2.3 ms per Flux document set, x2,000 devices. Returns undefined for anything
// it does not handle exactly (non-plain objects, odd numbers, long keys, undefined in arrays) so the caller
// can fall back to the yaml library: output must parse back (YAML 1.1 and 1.2) to the same values.
const PLAIN = /^[A-Za-z0-9_./=+][A-Za-z0-9_./:@%+=, -]*$/;
// YAML 1.1/1.2 booleans, nulls, numbers, sexagesimals, dates, merge/value keys: quoted to stay strings
const AMBIGUOUS = /^(y|n|yes|no|true|false|on|off|null|~|[-+]?[0-9_.]*|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0[xob][0-9a-fA-F_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|[-+]?\.(inf|nan)|\d{4}-\d\d?-\d\d?.*|<<|=)$/i;
// characters YAML does not accept raw or treats as line breaks (1.1): escaped inside double quotes
const ESCAPE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

class Unsupported extends Error {}

export function quoted(s: string): string {
  return JSON.stringify(s).replace(ESCAPE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function yamlString(s: string): string {
  if (s.length > 0 && PLAIN.test(s) && !AMBIGUOUS.test(s) && !s.endsWith(' ') && !s.endsWith(':') && !s.includes(': ') && !s.includes(' #')) return s;
  return quoted(s);
}

function key(k: string): string {
  if (k.length > 1000) throw new Unsupported();
  return yamlString(k);
}

function num(v: number): string {
  const s = String(v);
  if (!Number.isFinite(v) || Object.is(v, -0) || /e/i.test(s)) throw new Unsupported();
  return s;
}

// literal block only for text whose every line is printable, with no whitespace-only lines and a first
// line that is non-empty and starts with a non-blank (so indentation auto-detection is unambiguous)
const NOT_LITERAL = /[\r\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]|\n[ \t]+(\n|$)/;
function literalOk(s: string): boolean {
  return s.includes('\n') && s[0] !== '\n' && s[0] !== ' ' && s[0] !== '\t' && !NOT_LITERAL.test(s);
}

function literal(s: string, indent: string): string {
  let chomp = '';
  if (!s.endsWith('\n')) chomp = '-';
  else if (s.endsWith('\n\n')) chomp = '+';
  const body = chomp === '-' ? s : s.slice(0, -1);
  return `|${chomp}\n` + body.split('\n').map((l) => (l.length ? indent + l : '')).join('\n');
}

function isPlainObject(v: object): boolean {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function scalar(v: unknown, indent: string): string | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean': return v ? 'true' : 'false';
    case 'number': return num(v);
    case 'string': return literalOk(v) ? literal(v, indent) : yamlString(v);
    case 'object': return undefined;
    default: throw new Unsupported();
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

/** One document for a top-level plain mapping, ending in a newline; undefined if this emitter can't write it exactly. */
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
