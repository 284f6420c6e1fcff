// NoCloud meta-data. cloud-init runs its once-per-instance modules (users, host keys, write_files,
// runcmd) when the instance-id changes, so the id carries a digest of everything else rendered for the
// device: a changed config or a rotated key gives a new instance, an unchanged rebuild the same one.
import { createHash } from 'node:crypto';
import type { RenderedFile } from '../files.ts';
import { toYaml } from '../yaml.ts';

export function instanceId(deviceId: string, files: RenderedFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    h.update(`${f.path}\0${f.mode}\0${f.bytes.length}\0`).update(f.bytes);
  }
  return `${deviceId}-${h.digest('hex').slice(0, 16)}`;
}

export function renderMetaData(deviceId: string, iid: string): string {
  return toYaml({ 'instance-id': iid, 'local-hostname': deviceId });
}
