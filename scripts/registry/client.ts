// A small client of the OCI distribution HTTP API (what `edgeforge publish`, the tests and the benchmark use):
// manifests and blobs, push and pull, HTTPS with a pinned CA, and distribution's token auth (a 401 names the
// realm; the client asks it for a token with its user name and password, then retries). No docker/oras.
import https from 'node:https';
import http from 'node:http';

export interface Endpoint {
  /** host[:port] */
  host: string;
  /** PEM of the CA that signed the registry's (and its token issuer's) certificate */
  ca?: string | Buffer;
  username?: string;
  password?: string;
  /** plain HTTP (tests of the policy only; devices and publish always use HTTPS) */
  http?: boolean;
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Bytes that crossed the wire in bodies, both ways (what the benchmark adds up). */
export interface Traffic {
  requests: number;
  received: number;
  sent: number;
}

export class RegistryClient {
  readonly traffic: Traffic = { requests: 0, received: 0, sent: 0 };
  private readonly agent: http.Agent;
  private readonly tokens = new Map<string, string>();

  constructor(readonly ep: Endpoint) {
    this.agent = ep.http ? new http.Agent({ keepAlive: true, maxSockets: 8 }) : new https.Agent({ keepAlive: true, maxSockets: 8, ca: ep.ca });
  }

  close(): void {
    this.agent.destroy();
  }

  private raw(method: string, url: string, headers: Record<string, string>, body?: Buffer): Promise<Response> {
    const u = new URL(url);
    const mod = u.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        u,
        {
          method,
          headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
          agent: (u.protocol === 'http:') === Boolean(this.ep.http) ? this.agent : undefined,
          ca: this.ep.ca,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => {
            const b = Buffer.concat(parts);
            this.traffic.requests++;
            this.traffic.received += b.length;
            this.traffic.sent += body?.length ?? 0;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  private base(): string {
    return `${this.ep.http ? 'http' : 'https'}://${this.ep.host}`;
  }

  /** Ask the realm a 401 named for a token for its scope, with this client's credentials. */
  private async token(challenge: string): Promise<string> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!/^Bearer/i.test(challenge) || !params.realm) throw new RegistryError(`registry ${this.ep.host} asks for "${challenge}", not a token`, 401);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    if (params.scope) for (const s of params.scope.split(' ')) url.searchParams.append('scope', s);
    const auth: Record<string, string> = this.ep.username !== undefined ? { authorization: 'Basic ' + Buffer.from(`${this.ep.username}:${this.ep.password ?? ''}`).toString('base64') } : {};
    const r = await this.raw('GET', url.toString(), auth);
    if (r.status !== 200) throw new RegistryError(`token issuer ${url.origin} refused ${this.ep.username ?? 'anonymous'} (${r.status})`, r.status);
    const j = JSON.parse(r.body.toString('utf8')) as { token?: string; access_token?: string };
    return j.token ?? j.access_token ?? '';
  }

  /** One API call under `scope` (e.g. "repository:fleet/eu/plant-1:pull"), with token auth when asked. */
  async call(method: string, path: string, scope: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
    const url = path.startsWith('http') ? path : this.base() + path;
    const tok = this.tokens.get(scope);
    let r = await this.raw(method, url, { ...headers, ...(tok ? { authorization: `Bearer ${tok}` } : {}) }, body);
    const challenge = r.headers['www-authenticate'];
    if (r.status === 401 && typeof challenge === 'string') {
      const t = await this.token(challenge);
      this.tokens.set(scope, t);
      r = await this.raw(method, url, { ...headers, authorization: `Bearer ${t}` }, body);
    }
    return r;
  }

  /** The manifest a reference (tag or digest) names, or undefined when there is none. */
  async manifest(repo: string, ref: string, accept: string): Promise<{ digest: string; bytes: Buffer } | undefined> {
    const r = await this.call('GET', `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull`, { accept });
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new RegistryError(`GET ${repo}:${ref}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`, r.status);
    return { digest: String(r.headers['docker-content-digest'] ?? ''), bytes: r.body };
  }

  async blob(repo: string, digest: string): Promise<Buffer> {
    const r = await this.call('GET', `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull`);
    if (r.status !== 200) throw new RegistryError(`GET ${repo}@${digest}: ${r.status}`, r.status);
    return r.body;
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const r = await this.call('HEAD', `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull,push`);
    return r.status === 200;
  }

  /** Upload a blob in one PUT (monolithic upload: POST for a location, PUT with ?digest=). */
  async pushBlob(repo: string, digest: string, bytes: Buffer): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const start = await this.call('POST', `/v2/${repo}/blobs/uploads/`, scope);
    if (start.status !== 202 || !start.headers.location) throw new RegistryError(`POST ${repo} blob upload: ${start.status} ${start.body.toString('utf8').slice(0, 200)}`, start.status);
    const loc = new URL(String(start.headers.location), this.base());
    loc.searchParams.set('digest', digest);
    const put = await this.call('PUT', loc.toString(), scope, { 'content-type': 'application/octet-stream' }, bytes);
    if (put.status !== 201) throw new RegistryError(`PUT ${repo} blob ${digest}: ${put.status} ${put.body.toString('utf8').slice(0, 200)}`, put.status);
  }

  async putManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<void> {
    const r = await this.call('PUT', `/v2/${repo}/manifests/${ref}`, `repository:${repo}:pull,push`, { 'content-type': mediaType }, bytes);
    if (r.status !== 201) throw new RegistryError(`PUT ${repo}:${ref}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`, r.status);
  }
}
