// The site cache of the boot test's OS updates: a static HTTP server on the host's loopback serving the
// directory `edgeforge os publish` wrote (ring pointers, bundles), reached by the guest through a qemu forward.
// GET only; Range requests answered (curl -C - resumes a download); every request logged.
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

export interface OsSource {
  port: number;
  dir: string;
  requests: string[];
  close(): Promise<void>;
}

export async function startOsSource(dir: string): Promise<OsSource> {
  await fs.mkdir(dir, { recursive: true });
  const requests: string[] = [];
  const server = http.createServer(async (req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = path.join(dir, path.normalize(url).replace(/^(\.\.[/\\])+/, ''));
    const range = req.headers.range;
    requests.push(`${req.method} ${url}${range ? ` ${range}` : ''}`);
    const st = await fs.stat(file).catch(() => undefined);
    if (req.method !== 'GET' || !st?.isFile() || !file.startsWith(dir)) {
      res.writeHead(404).end();
      return;
    }
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    const start = m ? Number(m[1]) : 0;
    if (start >= st.size && st.size > 0) {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
      return;
    }
    res.writeHead(m ? 206 : 200, { 'content-length': st.size - start, ...(m ? { 'content-range': `bytes ${start}-${st.size - 1}/${st.size}` } : {}) });
    createReadStream(file, { start }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    dir,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
