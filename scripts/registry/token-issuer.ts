// The token issuer edgeforge runs beside a registry (`edgeforge registry token-server`): distribution's
// `auth: token` sends clients here with a scope; they authenticate with their user name and password
// (HTTP Basic), and get a short-lived token granting what the access file allows them on that repository:
// a device, pull on its site's repository; a site cache, pull on its site's; the publisher, push under the
// fleet's prefix. A user missing from the file (a revoked device) gets 401. The file is re-read when it
// changes, so `edgeforge registry config` after a revoke takes effect without a restart.
import { createPrivateKey, timingSafeEqual, createHash, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { checkAccessFile, grantedActions, parseScope, type AccessFile } from '../render/oci/access.ts';
import { signToken, type Access } from './jwt.ts';

export interface IssuerOptions {
  accessFile: string;
  /** PEM of the EC P-256 signing key (its certificate is the registry's rootcertbundle) */
  keyPem: string;
  /** token lifetime in seconds (a revoked device's last token ends with it) */
  ttl?: number;
  tls?: { cert: string; key: string };
  host?: string;
  port?: number;
  log?: (line: string) => void;
}

export interface RunningIssuer {
  url: string;
  port: number;
  /** requests answered, by outcome */
  counts: { issued: number; refused: number };
  close(): Promise<void>;
}

function loader(file: string): () => AccessFile {
  let mtime = -1;
  let cached: AccessFile | undefined;
  return () => {
    const m = statSync(file).mtimeMs;
    if (!cached || m !== mtime) {
      cached = checkAccessFile(JSON.parse(readFileSync(file, 'utf8')), file);
      mtime = m;
    }
    return cached;
  };
}

function basicAuth(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? undefined : { user: text.slice(0, i), password: text.slice(i + 1) };
}

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** Answer one token request: the HTTP status and body. Exported for tests of the policy alone. */
export function answer(access: AccessFile, key: KeyObject, url: URL, authorization: string | undefined, ttl: number): { status: number; body: unknown; user?: string } {
  const cred = basicAuth(authorization);
  const user = cred && access.users.find((u) => u.name === cred.user);
  const verifier = cred ? createHash('sha256').update(cred.password, 'utf8').digest('hex') : '';
  if (!cred || !user || !same(verifier, user.verifier)) return { status: 401, body: { errors: [{ code: 'UNAUTHORIZED', message: 'unknown user or wrong password' }] }, user: cred?.user };
  if (url.searchParams.get('service') !== access.service) return { status: 400, body: { errors: [{ code: 'DENIED', message: `this issuer serves "${access.service}"` }] }, user: user.name };
  const grants: Access[] = [];
  for (const s of url.searchParams.getAll('scope').flatMap((x) => x.split(' '))) {
    const p = parseScope(s);
    if (!p || p.type !== 'repository') continue;
    const actions = grantedActions(user, p.name, p.actions);
    if (actions.length) grants.push({ type: 'repository', name: p.name, actions });
  }
  const t = signToken(key, { issuer: access.issuer, service: access.service, subject: user.name, access: grants, ttl });
  // `token` only: distribution's clients and go-containerregistry read it (access_token is the OAuth2 alias)
  return { status: 200, body: { token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt }, user: user.name };
}

export async function startTokenIssuer(o: IssuerOptions): Promise<RunningIssuer> {
  const access = loader(o.accessFile);
  access(); // a bad file stops the start, not the first device
  const key = createPrivateKey(o.keyPem);
  const ttl = o.ttl ?? 300;
  const counts = { issued: 0, refused: 0 };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://issuer');
    let r: ReturnType<typeof answer>;
    try {
      r =
        url.pathname === '/token' && req.method === 'GET'
          ? answer(access(), key, url, req.headers.authorization, ttl)
          : { status: 404, body: { errors: [{ code: 'NOT_FOUND', message: 'GET /token' }] } };
    } catch (err) {
      r = { status: 500, body: { errors: [{ code: 'UNAVAILABLE', message: (err as Error).message }] } };
    }
    if (r.status === 200) counts.issued++;
    else counts.refused++;
    // never the password, never the token
    o.log?.(`${r.status} ${r.user ?? '-'} ${url.searchParams.getAll('scope').join(' ') || '-'}`);
    const body = JSON.stringify(r.body);
    res.writeHead(r.status, { 'content-type': 'application/json', ...(r.status === 401 ? { 'www-authenticate': 'Basic realm="edgeforge registry"' } : {}) });
    res.end(body);
  };
  const server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? 'https' : 'http'}://${o.host ?? '127.0.0.1'}:${port}/token`,
    port,
    counts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
