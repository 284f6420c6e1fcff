// Where a file really has data (SEEK_DATA/SEEK_HOLE). Node has no binding for these lseek whences, so a
// three-line python3 helper asks the kernel (python3 is on every machine with bmap-tools). Without it
// the whole file counts as mapped: slower to flash, never wrong.
import { spawnSync } from 'node:child_process';
import type { Extent } from './block.ts';

const HELPER = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    print(d, h - d)
    off = h
`;

export interface DataMap {
  extents: Extent[];
  /** false when the kernel could not be asked and everything was assumed mapped */
  exact: boolean;
}

export function dataExtents(path: string, size: number): DataMap {
  const r = spawnSync('python3', ['-c', HELPER, path], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0 || r.error) return { extents: size ? [{ offset: 0, length: size }] : [], exact: false };
  const extents = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [o, n] = l.split(' ').map(Number);
      return { offset: o, length: n };
    });
  return { extents, exact: true };
}
