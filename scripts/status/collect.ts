// Read every retained status of the fleet from the broker, with the operator's admin user, over TLS with
// the broker's CA pinned. The end of the retained burst is exact, not guessed: after subscribing, the CLI
// publishes a sentinel on its own topic; the broker handles one connection in order, so the sentinel comes
// back after every retained status (a timeout only guards a broker that never answers).
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { fleetStatusFilter, sentinelTopic, type StatusConfig } from '../inventory/status.ts';

export interface Collected {
  /** topic -> payload, the newest per topic */
  messages: Map<string, Buffer>;
  retained: number;
  live: number;
  ms: number;
}

export class BrokerError extends Error {}

export async function collectStatuses(cfg: StatusConfig, auth: { username: string; password: string; ca: string }, opts: { timeoutMs?: number; url?: string } = {}): Promise<Collected> {
  const t0 = performance.now();
  const nonce = randomBytes(8).toString('hex');
  const sentinel = sentinelTopic(cfg, nonce);
  const url = opts.url ?? cfg.broker.url;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `edgeforge-status-${nonce}`,
    username: auth.username,
    password: auth.password,
    ca: auth.ca,
    rejectUnauthorized: true,
    servername: /^[\d.]+$|:/.test(host) ? undefined : host,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: Math.min(opts.timeoutMs ?? 15000, 15000),
  });
  const messages = new Map<string, Buffer>();
  let retained = 0;
  let live = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BrokerError(`the broker ${url} did not finish sending the retained statuses within ${(opts.timeoutMs ?? 15000) / 1000}s`)), opts.timeoutMs ?? 15000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        const code = (err as Error & { code?: number }).code;
        const why = code === 134 || code === 135 || /Not authorized|Bad User Name or Password/i.test(err.message) ? `the broker refused user "${auth.username}" (wrong password, or the user is not in its password file)` : err.message;
        reject(new BrokerError(`cannot read statuses from ${url}: ${why}`));
      };
      client.on('error', fail);
      client.on('close', () => fail(new Error('the connection closed')));
      client.on('message', (topic, payload, packet) => {
        if (topic === sentinel) {
          clearTimeout(timer);
          resolve();
          return;
        }
        if (packet.retain) retained++;
        else live++;
        messages.set(topic, payload);
      });
      client.on('connect', () => {
        client.subscribe({ [fleetStatusFilter(cfg)]: { qos: 0 }, [sentinel]: { qos: 0 } }, (err, granted) => {
          if (err) return fail(err);
          const refused = (granted ?? []).find((g) => g.qos >= 128);
          if (refused) return fail(new Error(`the broker refused the subscription to ${refused.topic} (the admin user's ACL: edgeforge status broker-config)`));
          client.publish(sentinel, '', { qos: 1, retain: false }, (e) => e && fail(e));
        });
      });
    });
  } finally {
    client.removeAllListeners('close');
    client.removeAllListeners('error');
    client.on('error', () => {});
    await client.endAsync(true).catch(() => {});
  }
  return { messages, retained, live, ms: performance.now() - t0 };
}
