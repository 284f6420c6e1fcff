// A device's rendered files are one value: path -> bytes + mode + secret flag.
// Seed images, disk deltas, SSH bundles and the manifest are all made from this value,
// so the two deliveries (seed at boot, provision over SSH) can never drift apart.

import type { ArtifactKind } from '../manifest/types.ts';

export interface RenderedFile {
  /** path relative to the device's output directory, e.g. "seed/user-data" (forward slashes, no "..") */
  path: string;
  kind: ArtifactKind | 'other';
  bytes: Uint8Array;
  /** 0o600 for anything holding private material */
  mode: number;
  secret: boolean;
}

export function textFile(path: string, kind: RenderedFile['kind'], text: string, secret = false): RenderedFile {
  return { path, kind, bytes: Buffer.from(text, 'utf8'), mode: secret ? 0o600 : 0o644, secret };
}
