// Every inventory problem is collected, never thrown one at a time: an operator fixing a
// 2,000-line inventory wants the whole list in one run, each as FILE:LINE:COL: message.
import type { Problem } from '../util/errors.ts';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';

export type PathKey = string | number;

/** Finds YAML nodes by data path and turns their offsets into line/column. */
export class Locator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number): { line: number; col: number } {
    return this.lines.linePos(offset);
  }

  /** Node for a data path; falls back to the deepest existing ancestor. */
  node(path: readonly PathKey[], wantKey = false): Node | null {
    let node: unknown = this.doc.contents;
    let last: Node | null = (node as Node) ?? null;
    for (let i = 0; i < path.length; i++) {
      const key = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key));
        if (!pair) return last;
        if (wantKey && i === path.length - 1 && pair.key) return pair.key as Node;
        node = pair.value;
        // `key:` with no value has a null value node; point at the key then
        if (!node) return (pair.key as Node) ?? last;
      } else if (isSeq(node) && typeof key === 'number') {
        node = node.items[key];
        if (!node) return last;
      } else {
        return last;
      }
      last = node as Node;
    }
    return last;
  }

  pos(path: readonly PathKey[], wantKey = false): { line: number; col: number } {
    const n = this.node(path, wantKey);
    const off = n?.range?.[0] ?? 0;
    return this.at(off);
  }

  problem(path: readonly PathKey[], message: string, wantKey = false): Problem {
    return { ...this.pos(path, wantKey), message };
  }
}

/** Damerau-free Levenshtein distance, for "did you mean" on unknown keys. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const prev = new Array<number>(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= m; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= n; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[n];
}

export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const lw = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lw, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // only suggest when the typo is small relative to the word
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
