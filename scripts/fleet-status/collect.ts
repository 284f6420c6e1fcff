// Read every retained status of the fleet from the broker, with the operator's admin user, over TLS with
// the broker's CA pinned. The end of the retained burst is exact, not guessed: after subscribing, the CLI
// publishes a sentinel on its own topic; the broker handles one connection in order, so the sentinel comes
// back after every retained status (a timeout only guards a broker that never answers).
//
// With each status comes what the broker knows of it — whether it was retained and how much of its message
// expiry is left — which, unlike the report's own `time`, the device does not choose.
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { fleetStatusFilter, sentinelTopic, type StatusConfig } from '../inventory/fleet-status.ts';

export interface CollectedMessage {
  payload: Buffer;
  /** false: published while we were reading (it reached the broker just now) */
  retained: boolean;
  /** seconds of message expiry left as the broker delivered it; undefined: the message has no expiry */
  expiryLeftSec?: number;
  /** when this reader received it */
  receivedAt: Date;
}

export interface Collected {
  /** topic -> the newest message per topic */
  messages: Map<string, CollectedMessage>;
  retained: number;
  live: number;
  ms: number;
  /** connections it took: more than 1 when another reader logged in as the same user took the session */
  attempts: number;
}

export class BrokerError extends Error {}

/** The connection closed mid-read: most likely another reader logged in as the same admin user and took the
 *  session (client id = user name on the broker). */
class TakenOver extends Error {}

interface Auth {
  username: string;
  password: string;
  ca: string;
}

/** Readers that overlap take turns: the broker closes the older session, which tries again after a pause that
 *  doubles (0.5–1.5 s, then 1–3 s, …, random so two readers drift apart), within the timeout. */
const TAKEOVER_ATTEMPTS = 5;

export async function collectStatuses(cfg: StatusConfig, auth: Auth, opts: { timeoutMs?: number; url?: string } = {}): Promise<Collected> {
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? 15000;
  for (let attempt = 1; ; attempt++) {
    try {
      return { ...(await collectOnce(cfg, auth, opts.url ?? cfg.broker.url, timeoutMs - (performance.now() - t0))), ms: performance.now() - t0, attempts: attempt };
    } catch (err) {
      const pause = (500 + Math.random() * 1000) * 2 ** (attempt - 1);
      const left = timeoutMs - (performance.now() - t0) - pause;
      if (!(err instanceof TakenOver) || attempt >= TAKEOVER_ATTEMPTS || left < 2000) {
        if (err instanceof TakenOver)
          throw new BrokerError(`cannot read statuses from ${opts.url ?? cfg.broker.url}: the broker closed the connection while it was sending, ${attempt} time(s): ${err.message}`);
        throw err;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

async function collectOnce(cfg: StatusConfig, auth: Auth, url: string, timeoutMs: number): Promise<Omit<Collected, 'ms' | 'attempts'>> {
  const nonce = randomBytes(8).toString('hex');
  const sentinel = sentinelTopic(cfg, nonce);
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    // the broker replaces it with the user name (use_username_as_clientid); kept unique for a broker without that
    clientId: `edgeforge-status-${nonce}`,
    username: auth.username,
    password: auth.password,
    ca: auth.ca,
    rejectUnauthorized: true,
    servername: /^[\d.]+$|:/.test(host) ? undefined : host,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: Math.min(timeoutMs, 15000),
  });
  const messages = new Map<string, CollectedMessage>();
  let retained = 0;
  let live = 0;
  let connected = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BrokerError(`the broker ${url} did not finish sending the retained statuses within ${Math.round(timeoutMs / 1000)}s`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (err instanceof TakenOver) return reject(err);
        const code = (err as Error & { code?: number }).code;
        const why =
          code === 134 || code === 135 || /Not authorized|Bad User Name or Password/i.test(err.message)
            ? `the broker refused user "${auth.username}" (wrong password, or the user is not in its password file)`
            : err.message;
        reject(new BrokerError(`cannot read statuses from ${url}: ${why}`));
      };
      const takenOver = () => new TakenOver(`another client logging in as "${auth.username}" takes its session (the broker ties a client id to its user), so run one \`edgeforge status\` at a time`);
      client.on('error', fail);
      // 142: session taken over; Mosquitto 2.0.11 may also just close the older connection
      client.on('disconnect', (p) => fail(p.reasonCode === 142 ? takenOver() : new Error(`the broker disconnected (reason ${p.reasonCode})`)));
      client.on('close', () => fail(connected ? takenOver() : new Error('the connection closed')));
      client.on('message', (topic, payload, packet) => {
        if (topic === sentinel) {
          clearTimeout(timer);
          resolve();
          return;
        }
        if (packet.retain) retained++;
        else live++;
        messages.set(topic, { payload, retained: packet.retain, expiryLeftSec: packet.properties?.messageExpiryInterval, receivedAt: new Date() });
      });
      client.on('connect', () => {
        connected = true;
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
    client.removeAllListeners('disconnect');
    client.on('error', () => {});
    await client.endAsync(true).catch(() => {});
  }
  return { messages, retained, live };
}

/**
 * Clear the retained statuses on `topics` (devices that left the fleet: the broker-config ACL lets the admin
 * write there) with empty retained messages, MQTT's way to delete one.
 */
export async function clearRetained(cfg: StatusConfig, auth: Auth, topics: string[], opts: { url?: string } = {}): Promise<void> {
  if (!topics.length) return;
  const url = opts.url ?? cfg.broker.url;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const client = await mqtt
    .connectAsync(url, {
      protocolVersion: 5,
      username: auth.username,
      password: auth.password,
      ca: auth.ca,
      rejectUnauthorized: true,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      reconnectPeriod: 0,
      connectTimeout: 15000,
    })
    .catch((err: Error) => {
      throw new BrokerError(`cannot clear statuses on ${url}: ${err.message}`);
    });
  try {
    for (const t of topics) {
      // mqtt.js rejects a PUBACK whose reason code refuses the message (the ACL)
      await client.publishAsync(t, Buffer.alloc(0), { qos: 1, retain: true }).catch((err: Error) => {
        throw new BrokerError(
          `the broker refused to clear ${t} (${err.message}): rerun \`edgeforge status broker-config\` (its ACL lets the admin clear departed devices' topics) and reload the broker`,
        );
      });
    }
  } finally {
    await client.endAsync().catch(() => {});
  }
}
