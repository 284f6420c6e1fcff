// The devices an operator names with --only: one check for every command that takes it (build, provision).
// Every wrong name is reported at once, an unknown one with the closest known id.
import type { Fleet, ResolvedDevice } from './fleet.ts';
import { closest } from './problems.ts';

/**
 * The devices `only` names, in the fleet's order, and what is wrong with the names: unknown, or not active
 * (`inactive` says what that means for the caller). `refuse` may add a caller's own reason to refuse an active one.
 */
export function namedDevices(
  fleet: Fleet,
  only: string[],
  inactive: string,
  refuse: (d: ResolvedDevice) => string | undefined = () => undefined,
): { devices: ResolvedDevice[]; problems: { id: string; reason: string }[] } {
  const byId = new Map(fleet.devices.map((d) => [d.id, d]));
  const problems: { id: string; reason: string }[] = [];
  for (const id of new Set(only)) {
    const d = byId.get(id);
    if (!d) {
      const guess = closest(id, byId.keys());
      problems.push({ id, reason: `--only: no device "${id}" in ${fleet.file}${guess ? `; did you mean "${guess}"?` : ''}` });
    } else if (d.status !== 'active') problems.push({ id, reason: `--only: device "${id}" is ${d.status}${d.replacedBy ? ` (replaced by ${d.replacedBy})` : ''}: ${inactive}` });
    else {
      const why = refuse(d);
      if (why) problems.push({ id, reason: `--only: ${why}` });
    }
  }
  const want = new Set(only);
  return { devices: fleet.active.filter((d) => want.has(d.id)), problems };
}
