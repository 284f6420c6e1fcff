// An object of a built-in kind against the fields its Kubernetes release defines (kubernetes-api.ts), as the API
// server's strict field validation (`kubectl apply --validate=strict`, Flux's server-side apply) would: an unknown
// field is an error, and so is a value of the wrong JSON type. Null is accepted anywhere (it means "unset").
import type { ApiField, KubernetesApi } from './kubernetes-api.ts';

/** Quantities: typed string by the generator, but Kubernetes also takes a JSON number. */
const QUANTITY: Record<string, string[]> = {
  V1ResourceRequirements: ['limits', 'requests'],
  V1VolumeResourceRequirements: ['limits', 'requests'],
  V1EmptyDirVolumeSource: ['sizeLimit'],
  V1ResourceQuotaSpec: ['hard'],
  V1LimitRangeItem: ['default', 'defaultRequest', 'max', 'min', 'maxLimitRequestRatio'],
  V1PersistentVolumeSpec: ['capacity'],
};

const kindOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

export function checkCoreObject(api: KubernetesApi, type: string, value: unknown): string[] {
  const out: string[] = [];
  walk(api, type, value, '', out, false);
  return out;
}

function walk(api: KubernetesApi, type: string, v: unknown, at: string, out: string[], quantity: boolean, format?: string): void {
  if (v === null || v === undefined) return;
  const where = at || '(object)';
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(v)) return void out.push(`${where}: must be a list, is a ${kindOf(v)}`);
    v.forEach((x, i) => walk(api, array[1], x, `${at}[${i}]`, out, quantity));
    return;
  }
  if (map) {
    if (kindOf(v) !== 'object') return void out.push(`${where}: must be a mapping, is a ${kindOf(v)}`);
    for (const [k, x] of Object.entries(v as object)) walk(api, map[1], x, `${at}.${k}`, out, quantity);
    return;
  }
  switch (type) {
    case 'any':
    case 'object':
      return;
    case 'string':
    case 'Date':
      if (typeof v === 'string' || (quantity && typeof v === 'number')) return;
      return void out.push(`${where}: must be a string, is a ${kindOf(v)} (${JSON.stringify(v)})`);
    case 'boolean':
      if (typeof v !== 'boolean') out.push(`${where}: must be true or false, is a ${kindOf(v)} (${JSON.stringify(v)})`);
      return;
    case 'number':
      if (typeof v !== 'number') return void out.push(`${where}: must be a number, is a ${kindOf(v)} (${JSON.stringify(v)})`);
      if (format?.startsWith('int') && !Number.isInteger(v)) out.push(`${where}: must be a whole number (${format})`);
      return;
    case 'IntOrString':
      if (typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))) return;
      return void out.push(`${where}: must be a whole number or a string, is a ${kindOf(v)}`);
  }
  const fields = api.fields(type);
  if (!fields) return void out.push(`${where}: type ${type} is not in Kubernetes ${api.minor}'s API`);
  if (kindOf(v) !== 'object') return void out.push(`${where}: must be a mapping (${type}), is a ${kindOf(v)}`);
  const byName = new Map<string, ApiField>(fields.map((f) => [f.name, f]));
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const f = byName.get(k);
    const path = at ? `${at}.${k}` : k;
    if (!f) {
      out.push(`${path}: unknown field (${type} of Kubernetes ${api.minor} has ${[...byName.keys()].join(', ')})`);
      continue;
    }
    walk(api, f.type, x, path, out, QUANTITY[type]?.includes(k) ?? false, f.format);
  }
}
