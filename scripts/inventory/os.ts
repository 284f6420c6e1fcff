// Which devices have A/B OS updates (inventory os:, docs/os-updates.md): with `os:`, the devices of the profiles
// it lists (every profile when it lists none). Everyone else keeps single-root cards.
import type { Fleet, ResolvedDevice } from './fleet.ts';

export function isAbDevice(fleet: Pick<Fleet, 'os'>, d: Pick<ResolvedDevice, 'profileName'>): boolean {
  const os = fleet.os;
  return !!os && (!os.profiles || os.profiles.includes(d.profileName));
}
