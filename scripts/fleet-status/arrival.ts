// When a status reached the broker, from what the broker says rather than from the report's own `time`
// (which a device, or a thief with its credential, writes as it likes). Mosquitto keeps no receive time for a
// retained message, but it delivers the message expiry that is left: the reporter always sends the fleet's
// expiry (two periods), so "fleet expiry − expiry left" is how long ago it arrived. A message published while
// we read arrived just now. Pure.

export interface Arrival {
  /**
   * When the broker received it: exact for the reporter's own messages; a message sent with a shorter expiry
   * arrived later than this. Undefined when the broker cannot say (no expiry, or more left than the fleet's).
   */
  at?: Date;
  /** 'fleet': at most the fleet's expiry left; 'longer': more than that left (sent before status.period was
   *  shortened, or not by the reporter); 'none': no expiry at all (never the reporter: an MQTT 3.1.1 client,
   *  a v5 publish without expiry, or a will) — such a status stays on the broker until the topic is written */
  expiry: 'fleet' | 'longer' | 'none';
  /** seconds of expiry left */
  leftSec?: number;
}

export function arrivalOf(m: { retained: boolean; expiryLeftSec?: number; receivedAt: Date }, fleetExpirySec: number): Arrival {
  const left = m.expiryLeftSec;
  const expiry = left === undefined ? 'none' : left > fleetExpirySec ? 'longer' : 'fleet';
  if (!m.retained) return { at: m.receivedAt, expiry, leftSec: left };
  if (expiry !== 'fleet') return { expiry, leftSec: left };
  return { at: new Date(m.receivedAt.getTime() - (fleetExpirySec - left!) * 1000), expiry, leftSec: left };
}
