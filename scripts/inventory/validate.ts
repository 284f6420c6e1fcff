// Schema validation: zod issues → positioned problems, with "did you mean" for unknown keys.
import { z } from 'zod';
import { InventorySchema, type Inventory } from './schema.ts';
import { closest, type Locator, type PathKey } from './problems.ts';
import { type Problem } from '../util/errors.ts';

type AnySchema = z.core.$ZodType;

function unwrap(s: AnySchema): AnySchema {
  let cur: AnySchema = s;
  for (let i = 0; i < 10; i++) {
    const def = (cur as unknown as { _zod: { def: { type: string; innerType?: AnySchema } } })._zod.def;
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) cur = def.innerType;
    else break;
  }
  return cur;
}

/** The object schemas reachable at a data path (several for unions). */
function schemasAt(root: AnySchema, path: readonly PathKey[]): AnySchema[] {
  let current: AnySchema[] = [root];
  for (const key of path) {
    const next: AnySchema[] = [];
    for (const raw of current) {
      const s = unwrap(raw);
      const def = (s as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
      if (def.type === 'object') {
        const shape = def.shape as Record<string, AnySchema>;
        if (typeof key === 'string' && shape[key]) next.push(shape[key]);
      } else if (def.type === 'array') next.push(def.element as AnySchema);
      else if (def.type === 'record') next.push(def.valueType as AnySchema);
      else if (def.type === 'union') {
        for (const o of def.options as AnySchema[]) next.push(...schemasAt(o, [key]));
      }
    }
    current = next;
  }
  return current.flatMap((s) => {
    const u = unwrap(s);
    const def = (u as unknown as { _zod: { def: { type: string; options?: AnySchema[] } } })._zod.def;
    return def.type === 'union' ? (def.options ?? []).map(unwrap) : [u];
  });
}

function knownKeys(root: AnySchema, path: readonly PathKey[]): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(root, path)) {
    const def = (s as unknown as { _zod: { def: { type: string; shape?: Record<string, unknown> } } })._zod.def;
    if (def.type === 'object' && def.shape) for (const k of Object.keys(def.shape)) keys.add(k);
  }
  return [...keys];
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}

function valueAt(data: unknown, path: readonly PathKey[]): unknown {
  let cur = data;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

function pathText(path: readonly PathKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

export function issueToProblems(issue: z.core.$ZodIssue, data: unknown, locator: Locator): Problem[] {
  const path = issue.path as PathKey[];
  const where = pathText(path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys(InventorySchema, path);
      return issue.keys.map((k) => {
        const guess = closest(k, known);
        const hint = guess ? `; did you mean "${guess}"?` : known.length ? `; allowed here: ${known.join(', ')}` : '';
        return locator.problem([...path, k], `unknown key "${k}"${where ? ` in ${where}` : ''}${hint}`, true);
      });
    }
    case 'invalid_type': {
      const actual = valueAt(data, path);
      if (actual === undefined) {
        const parent = path.slice(0, -1);
        const key = path[path.length - 1];
        return [locator.problem(parent, `missing required key "${String(key)}"${parent.length ? ` in ${pathText(parent)}` : ''}`)];
      }
      return [locator.problem(path, `${where}: expected ${issue.expected}, got ${describeValue(actual)}`)];
    }
    case 'invalid_value': {
      const allowed = issue.values.map((v) => JSON.stringify(v)).join(', ');
      const actual = valueAt(data, path);
      const guess = typeof actual === 'string' ? closest(actual, issue.values.map(String)) : undefined;
      return [locator.problem(path, `${where}: ${JSON.stringify(actual)} is not one of ${allowed}${guess ? `; did you mean "${guess}"?` : ''}`)];
    }
    case 'invalid_union': {
      // discriminated unions report the discriminator; say which values exist
      const note = (issue as unknown as { note?: string }).note;
      const actual = valueAt(data, path);
      return [
        locator.problem(
          path,
          `${where}: ${note ?? 'does not match any allowed form'}${actual && typeof actual === 'object' && 'mode' in actual ? ` (mode ${JSON.stringify((actual as { mode: unknown }).mode)})` : ''}`,
        ),
      ];
    }
    case 'invalid_key': {
      const key = path[path.length - 1];
      const inner = issue.issues[0]?.message ?? 'invalid name';
      return [locator.problem(path, `"${String(key)}": ${inner}`, true)];
    }
    default: {
      const actual = valueAt(data, path);
      const shown = typeof actual === 'string' || typeof actual === 'number' ? ` ${JSON.stringify(actual)}` : '';
      return [locator.problem(path, `${where}:${shown} ${issue.message}`)];
    }
  }
}

export function validateSchema(data: unknown, locator: Locator): { inventory?: Inventory; problems: Problem[] } {
  const r = InventorySchema.safeParse(data, { reportInput: false });
  if (r.success) return { inventory: r.data, problems: [] };
  return { problems: r.error.issues.flatMap((i) => issueToProblems(i, data, locator)) };
}
