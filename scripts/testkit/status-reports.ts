// Simulated devices for tests and bench:status: each connects with its OWN broker user and password and
// publishes its status the way the reporter does (MQTT v5, retained, QoS 1, message expiry), through
// mqtt.js so that 2,000 of them take seconds, not 2,000 process starts.
import mqtt from 'mqtt';
import pLimit from 'p-limit';
import { STATUS_FORMAT, type StatusReport } from '../fleet-status/report.ts';

export interface SimDevice {
  id: string;
  username: string;
  password: string;
  topic: string;
  /** the payload: a report object (serialized here) or raw bytes (malformed/oversized cases) */
  payload: StatusReport | Buffer;
  /** MQTT v5 message expiry; undefined: none (what the reporter never does) */
  expirySec?: number;
  /** 4: MQTT 3.1.1, which has no message expiry (default 5, as the reporter) */
  protocolVersion?: 4 | 5;
  /** default: the device id (the broker replaces it with the user name) */
  clientId?: string;
}

export function simReport(id: string, site: string, fleet: string, over: Partial<StatusReport> & { time: string }): StatusReport {
  return {
    format: STATUS_FORMAT,
    device: id,
    fleet,
    site,
    firstboot: { step: 'record', state: 'done', at: over.time, error: '' },
    lastError: '',
    applied: { bundleSha256: '', at: over.time },
    gitops: { revision: 'main@sha1:0123456789abcdef0123456789abcdef01234567', ready: 'true' },
    k3s: { version: 'unknown', certNotAfter: '' },
    dataVolume: { state: 'unlocked', since: '', detail: '' },
    disk: { freeMiB: 20480 },
    uptimeSec: 3600,
    reporter: { memoryPeakKiB: null },
    ...over,
  };
}

/** Publish once per device; returns per device the PUBACK reason code (0 = accepted) or the connect error. */
export async function publishAll(url: string, ca: string, devices: SimDevice[], concurrency = 64): Promise<Map<string, { ok: boolean; reason: string }>> {
  const limit = pLimit(concurrency);
  const out = new Map<string, { ok: boolean; reason: string }>();
  await Promise.all(
    devices.map((d) =>
      limit(
        () =>
          new Promise<void>((resolve) => {
            const c = mqtt.connect(url, {
              protocolVersion: d.protocolVersion ?? 5,
              clientId: d.clientId ?? d.id,
              username: d.username,
              password: d.password,
              ca,
              rejectUnauthorized: true,
              reconnectPeriod: 0,
              connectTimeout: 20000,
              clean: true,
            });
            const done = (ok: boolean, reason: string) => {
              if (out.has(d.id)) return;
              out.set(d.id, { ok, reason });
              c.end(true, () => resolve());
            };
            c.on('error', (e) => done(false, e.message));
            c.on('connect', () => {
              const body = Buffer.isBuffer(d.payload) ? d.payload : Buffer.from(JSON.stringify(d.payload));
              const properties = d.expirySec !== undefined && (d.protocolVersion ?? 5) === 5 ? { messageExpiryInterval: d.expirySec } : undefined;
              c.publish(d.topic, body, { qos: 1, retain: true, properties }, (err, packet) => {
                const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
                if (err) done(false, err.message);
                else done(rc < 128, rc < 128 ? 'accepted' : `reason code ${rc}`);
              });
            });
          }),
      ),
    ),
  );
  return out;
}
