// Markdown helpers of the plan: tables, byte counts, and the one rule that keeps a 2,000-device plan short —
// a list or table longer than its cap names a few and counts the rest (the appendix and --format json list all).

/** Rows a table of the plan shows at most; the rest are counted and left to the appendix. */
export const MAX_ROWS = 40;
/** Names a sentence lists before it counts the rest ("a, b, c and 47 more"). */
export const MAX_NAMES = 4;

export type Cell = string | number | undefined;

export function table(head: string[], rows: Cell[][], max = MAX_ROWS): string {
  const esc = (v: Cell) =>
    String(v ?? '')
      .replace(/\|/g, '\\|')
      .replace(/\n/g, ' ');
  const shown = rows.length > max ? rows.slice(0, max) : rows;
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...shown.map((r) => `| ${r.map(esc).join(' | ')} |`)];
  if (rows.length > max) out.push('', `(${rows.length - max} more row(s): \`edgeforge plan --appendix FILE\` or \`--format json\`)`);
  return out.join('\n');
}

/** "a, b, c" or "a, b, c, d and 46 more". */
export function names(xs: string[], max = MAX_NAMES, none = '(none)'): string {
  if (!xs.length) return none;
  if (xs.length <= max) return xs.join(', ');
  return `${xs.slice(0, max).join(', ')} and ${xs.length - max} more`;
}

/** "3 sites (a, b, c)" / "50 sites (a, b, c, d and 46 more)" */
export function counted(xs: string[], noun: string, max = MAX_NAMES): string {
  return `${xs.length} ${noun}${xs.length === 1 ? '' : 's'}${xs.length ? ` (${names(xs, max)})` : ''}`;
}

/** Decimal units, as network and storage sizes are quoted. */
export function human(bytes: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = bytes;
  while (v >= 1000 && i < u.length - 1) ((v /= 1000), i++);
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${u[i]}`;
}

export const num = (n: number) => Math.round(n).toLocaleString('en-US');

export function groupBy<T>(xs: T[], key: (x: T) => string): [string, T[]][] {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const have = m.get(k);
    if (have) have.push(x);
    else m.set(k, [x]);
  }
  return [...m];
}
