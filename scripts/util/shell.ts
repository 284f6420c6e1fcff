// The one quoting function for everything that reaches a shell (zx's rule): a single-quoted word is safe for
// any string, so no caller ever decides which characters are special.

/** Single-quoted shell word: safe for any string. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A checked-in shell asset with its `@NAME@` placeholders replaced by `values`, as given (a caller quotes with
 * shq where a value needs it). Every placeholder needs a value and every value a placeholder, so a path renamed
 * in device/layout.ts or a setting dropped cannot leave a stale copy behind in the asset.
 */
export function fillShellTemplate(what: string, text: string, values: Readonly<Record<string, string>>): string {
  const unused = new Set(Object.keys(values));
  const out = text.replace(/@([A-Z][A-Z0-9_]*)@/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`${what}: no value for its placeholder @${name}@`);
    unused.delete(name);
    return v;
  });
  if (unused.size) throw new Error(`${what}: has no placeholder @${[...unused].join('@, @')}@`);
  return out;
}
