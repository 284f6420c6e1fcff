// The one quoting function for everything that reaches a shell (zx's rule): a single-quoted word is safe for
// any string, so no caller ever decides which characters are special.

/** Single-quoted shell word: safe for any string. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
