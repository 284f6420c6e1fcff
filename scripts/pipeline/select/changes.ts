// What an inventory change means per device: the inputs that reach a device's rendered files are
// hashed, so CI can rebuild only what changed and reviewers can see it before merging.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';

/** Everything from the fleet and the device that rendering reads. Positions and notes are left out. */
export function deviceInputs(fleet: Fleet, d: ResolvedDevice): unknown {
  const { source: _source, notes: _notes, ...device } = d;
  return {
    device,
    fleet: { name: fleet.name, k3s: fleet.k3s, gitops: fleet.gitops, admins: fleet.admins },
    // a server's config names its agents and an agent's names its server: cluster peers matter
  };
}

/** JSON with sorted keys and no undefined members: equal values give equal strings (hash input). */
export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

export type ChangeKind = 'added' | 'removed' | 're-rendered' | 'revoked' | 'reinstated' | 'unchanged';

export interface DeviceChange {
  id: string;
  kind: ChangeKind;
  site: string;
  /** which top-level inputs differ, for re-rendered devices */
  fields: string[];
}

function changedFields(a: unknown, b: unknown): string[] {
  const out: string[] = [];
  const ia = a as { device: Record<string, unknown>; fleet: Record<string, unknown> };
  const ib = b as { device: Record<string, unknown>; fleet: Record<string, unknown> };
  for (const k of new Set([...Object.keys(ia.device), ...Object.keys(ib.device)])) if (stable(ia.device[k]) !== stable(ib.device[k])) out.push(k);
  for (const k of new Set([...Object.keys(ia.fleet), ...Object.keys(ib.fleet)])) if (stable(ia.fleet[k]) !== stable(ib.fleet[k])) out.push(`fleet.${k}`);
  return out;
}

/** Per device, what going from `before` to `after` does. */
export function diffFleets(before: Fleet | undefined, after: Fleet): DeviceChange[] {
  const prev = new Map((before?.devices ?? []).map((d) => [d.id, d]));
  const out: DeviceChange[] = [];
  for (const d of after.devices) {
    const p = prev.get(d.id);
    const wasActive = p?.status === 'active';
    const isActive = d.status === 'active';
    if (!p) {
      if (isActive) out.push({ id: d.id, kind: 'added', site: d.siteId, fields: [] });
      continue;
    }
    if (wasActive && !isActive) out.push({ id: d.id, kind: 'revoked', site: d.siteId, fields: ['status'] });
    else if (!wasActive && isActive) out.push({ id: d.id, kind: 'reinstated', site: d.siteId, fields: ['status'] });
    else if (isActive) {
      const a = deviceInputs(before!, p);
      const b = deviceInputs(after, d);
      const fields = changedFields(a, b);
      out.push({ id: d.id, kind: fields.length ? 're-rendered' : 'unchanged', site: d.siteId, fields });
    }
  }
  const now = new Set(after.devices.map((d) => d.id));
  for (const p of before?.devices ?? []) if (!now.has(p.id) && p.status === 'active') out.push({ id: p.id, kind: 'removed', site: p.siteId, fields: [] });
  return out;
}
