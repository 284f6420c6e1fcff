import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** what a file's bytes are: their sha256 (hex) and how many */
export interface FileDigest {
  sha256: string;
  bytes: number;
}

/** sha256 and size of a file, streamed (base images and airgap bundles are GBs). The one file hasher of the project. */
export async function sha256OfFile(file: string): Promise<FileDigest> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}
