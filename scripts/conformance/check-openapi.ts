// A custom resource against its CRD's structural schema (openAPIV3Schema), as the API server validates it with
// strict field validation: unknown fields (those the schema would prune), types, int-or-string, enums, patterns,
// lengths, bounds, required fields. Not evaluated: CEL rules (x-kubernetes-validations) — said once per object.
export interface OpenApiSchema {
  type?: string;
  format?: string;
  properties?: Record<string, OpenApiSchema>;
  additionalProperties?: OpenApiSchema | boolean;
  items?: OpenApiSchema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  minLength?: number;
  maximum?: number;
  minimum?: number;
  maxItems?: number;
  minItems?: number;
  anyOf?: OpenApiSchema[];
  oneOf?: OpenApiSchema[];
  allOf?: OpenApiSchema[];
  nullable?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-validations'?: unknown[];
}

const kindOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Problems of `value` under `schema`, each "path: reason". `skipRoot` names root fields checked elsewhere
 * (metadata); `partial` (a kustomize patch) checks fields and types but not required fields.
 */
export function checkOpenApi(schema: OpenApiSchema, value: unknown, opts: { skipRoot?: string[]; partial?: boolean } = {}): string[] {
  const out: string[] = [];
  walk(schema, value, '', out, Boolean(opts.partial), opts.skipRoot);
  return out;
}

function typeProblem(s: OpenApiSchema, v: unknown): string | undefined {
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v)) ? undefined : `must be a whole number or a string, is a ${kindOf(v)}`;
  switch (s.type) {
    case undefined:
      return undefined;
    case 'object':
      return kindOf(v) === 'object' ? undefined : `must be a mapping, is a ${kindOf(v)} (${JSON.stringify(v)})`;
    case 'array':
      return Array.isArray(v) ? undefined : `must be a list, is a ${kindOf(v)}`;
    case 'string':
      return typeof v === 'string' ? undefined : `must be a string, is a ${kindOf(v)} (${JSON.stringify(v)})`;
    case 'boolean':
      return typeof v === 'boolean' ? undefined : `must be true or false, is a ${kindOf(v)} (${JSON.stringify(v)})`;
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v) ? undefined : `must be a whole number, is a ${kindOf(v)} (${JSON.stringify(v)})`;
    case 'number':
      return typeof v === 'number' ? undefined : `must be a number, is a ${kindOf(v)} (${JSON.stringify(v)})`;
  }
  return undefined;
}

function valueProblems(s: OpenApiSchema, v: unknown): string[] {
  const out: string[] = [];
  if (s.enum && !s.enum.some((e) => e === v)) out.push(`must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}, is ${JSON.stringify(v)}`);
  if (typeof v === 'string') {
    if (s.pattern && !new RegExp(s.pattern, 'u').test(v)) out.push(`${JSON.stringify(v)} does not match ${s.pattern}`);
    if (s.maxLength !== undefined && [...v].length > s.maxLength) out.push(`longer than ${s.maxLength} characters`);
    if (s.minLength !== undefined && [...v].length < s.minLength) out.push(`shorter than ${s.minLength} characters`);
  }
  if (typeof v === 'number') {
    if (s.maximum !== undefined && v > s.maximum) out.push(`${v} is above the maximum ${s.maximum}`);
    if (s.minimum !== undefined && v < s.minimum) out.push(`${v} is below the minimum ${s.minimum}`);
    if (s.format === 'int32' && (v > 2147483647 || v < -2147483648)) out.push(`${v} does not fit int32`);
  }
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`more than ${s.maxItems} items`);
    if (s.minItems !== undefined && v.length < s.minItems) out.push(`fewer than ${s.minItems} items`);
  }
  return out;
}

function walk(s: OpenApiSchema, v: unknown, at: string, out: string[], partial: boolean, skip: string[] = []): void {
  if (v === null || v === undefined) return; // null is pruned to "unset" before validation
  const where = at || '(object)';
  const t = typeProblem(s, v);
  if (t) return void out.push(`${where}: ${t}`);
  for (const p of valueProblems(s, v)) out.push(`${where}: ${p}`);
  // value validations (anyOf/oneOf/allOf) only constrain the value; structural parts decide the fields
  for (const alt of [s.anyOf, s.oneOf].filter((a): a is OpenApiSchema[] => Boolean(a))) {
    const fits = alt.filter((a) => typeProblem(a, v) === undefined && valueProblems(a, v).length === 0);
    if (!fits.length) out.push(`${where}: matches none of ${alt.map((a) => a.type ?? (a['x-kubernetes-int-or-string'] ? 'int-or-string' : 'schema')).join(' | ')}`);
  }
  for (const a of s.allOf ?? []) for (const p of [typeProblem(a, v), ...valueProblems(a, v)].filter(Boolean)) out.push(`${where}: ${p}`);
  if (Array.isArray(v) && s.items) v.forEach((x, i) => walk(s.items!, x, `${at}[${i}]`, out, partial));
  if (kindOf(v) !== 'object') return;
  const obj = v as Record<string, unknown>;
  for (const r of partial ? [] : (s.required ?? [])) if (obj[r] === undefined && !skip.includes(r)) out.push(`${at ? `${at}.` : ''}${r}: required`);
  const embedded = s['x-kubernetes-embedded-resource'] ? ['apiVersion', 'kind', 'metadata'] : [];
  for (const [k, x] of Object.entries(obj)) {
    const path = at ? `${at}.${k}` : k;
    if (skip.includes(k) || embedded.includes(k)) continue;
    const sub = s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    if (sub) walk(sub, x, path, out, partial);
    else if (!s['x-kubernetes-preserve-unknown-fields'] && s.additionalProperties !== true)
      out.push(`${path}: unknown field (the schema has ${Object.keys(s.properties ?? {}).join(', ') || 'no fields'})`);
  }
}

/** Whether any part of the schema carries CEL rules this check does not evaluate. */
export function hasCelRules(s: OpenApiSchema | undefined): boolean {
  if (!s) return false;
  if (s['x-kubernetes-validations']?.length) return true;
  return [...Object.values(s.properties ?? {}), s.items, typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined].some((x) => hasCelRules(x));
}
