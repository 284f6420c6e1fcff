// A small deterministic YAML emitter for the documents edgeforge writes (cloud-config, network-config).
// Why not yaml.stringify: rendering 2,000 devices must take seconds, and we want multi-line file contents
// as readable literal blocks. Only plain data goes in (maps, arrays, strings, numbers, booleans);
// key order is insertion order. Anything a YAML 1.1 reader (PyYAML, cloud-init) could misread as
// another type is double-quoted, using JSON escapes (a JSON string is a valid YAML double-quoted scalar).
export type YamlValue = string | number | boolean | null | YamlValue[] | { [k: string]: YamlValue | undefined };

const PLAIN = /^[A-Za-z0-9_./@%+=-][A-Za-z0-9_./:@%+=, -]*$/;
// YAML 1.1 booleans, nulls, numbers, sexagesimals, dates, merge keys: all must be quoted to stay strings
const AMBIGUOUS = /^(y|n|yes|no|true|false|on|off|null|~|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0[xob][0-9a-fA-F_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|[-+]?\.(inf|nan)|\d{4}-\d\d?-\d\d?.*|<<|=)$/i;

export function yamlString(s: string): string {
  if (s.length > 0 && PLAIN.test(s) && !AMBIGUOUS.test(s) && !s.endsWith(' ') && !s.includes(': ') && !s.includes(' #') && !/^[-?:,]/.test(s)) return s;
  return JSON.stringify(s);
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`cannot write ${v} as YAML`);
    return String(v);
  }
  return yamlString(v);
}

// A literal block keeps the bytes exactly when every line is printable text (tabs inside lines are content)
// and the first line does not start with a space or tab (that would need an indentation indicator).
const NOT_LITERAL = /[\r\u0000-\u0008\u000b-\u001f\u007f\u0085\u2028\u2029\ufeff]/;
function literalBlockOk(s: string): boolean {
  return s.includes('\n') && s[0] !== ' ' && s[0] !== '\t' && !NOT_LITERAL.test(s);
}

function literal(s: string, indent: string): string {
  let chomp = '';
  let body = s;
  if (!s.endsWith('\n')) chomp = '-';
  else if (s.endsWith('\n\n')) chomp = '+';
  if (chomp !== '-') body = s.slice(0, -1);
  // "+" keeps every trailing newline: write all but the final one as empty lines
  const lines = body.split('\n');
  return `|${chomp}\n` + lines.map((l) => (l.length ? indent + l : '')).join('\n');
}

function isScalar(v: YamlValue): v is string | number | boolean | null {
  return v === null || typeof v !== 'object';
}

function emit(v: YamlValue, indent: string, out: string[], lead: string): void {
  // `lead` is what precedes the value on its first line ("key:" or "-")
  if (isScalar(v)) {
    if (typeof v === 'string' && literalBlockOk(v)) out.push(`${lead} ${literal(v, indent + '  ')}`);
    else out.push(`${lead} ${scalar(v)}`);
    return;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return void out.push(`${lead} []`);
    out.push(lead);
    for (const item of v) emitItem(item, indent, out);
    return;
  }
  const entries = Object.entries(v).filter(([, x]) => x !== undefined) as [string, YamlValue][];
  if (entries.length === 0) return void out.push(`${lead} {}`);
  out.push(lead);
  for (const [k, x] of entries) emit(x, indent + '  ', out, `${indent}  ${yamlString(k)}:`);
}

function emitItem(item: YamlValue, indent: string, out: string[]): void {
  const dash = `${indent}  -`;
  if (isScalar(item) || (Array.isArray(item) && item.length === 0)) return emit(item, indent + '  ', out, dash);
  if (Array.isArray(item)) {
    out.push(dash);
    for (const x of item) emitItem(x, indent + '  ', out);
    return;
  }
  const entries = Object.entries(item).filter(([, x]) => x !== undefined) as [string, YamlValue][];
  if (entries.length === 0) return void out.push(`${dash} {}`);
  // first key on the dash line, the rest aligned under it
  const sub: string[] = [];
  entries.forEach(([k, x]) => emit(x, indent + '    ', sub, `${indent}    ${yamlString(k)}:`));
  sub[0] = `${dash} ${sub[0].slice(indent.length + 4)}`;
  out.push(...sub);
}

/** A whole document: a top-level mapping, keys in the given order, ending in a newline. */
export function toYaml(doc: { [k: string]: YamlValue | undefined }): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(doc)) {
    if (v === undefined) continue;
    emit(v, '', out, `${yamlString(k)}:`);
  }
  return out.join('\n') + '\n';
}
