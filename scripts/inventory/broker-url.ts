// The one rule for a status broker's address: mqtts://HOST[:PORT] (TLS only; IPv6 in brackets; default port 8883).
// The inventory's schema checks status.broker with BROKER_URL (its JSON schema carries the pattern), the resolved
// fleet parses it with parseBrokerUrl, and `edgeforge status --broker` goes through the same function.

/** MQTT over TLS's registered port: what a broker URL without a port means. */
export const MQTTS_DEFAULT_PORT = 8883;

/** (the inventory's JSON schema carries this pattern as written: inventory/schema.json) */
export const BROKER_URL = /^mqtts:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?\/?$/;

export const BROKER_URL_RULE = `mqtts://HOST[:PORT] (TLS only; default port ${MQTTS_DEFAULT_PORT})`;

export interface BrokerAddress {
  /** the host name or address (an IPv6 address without its brackets) */
  host: string;
  port: number;
  /** mqtts://HOST:PORT, the port always written, no trailing slash */
  url: string;
}

/** The broker's address, or undefined when `url` does not follow BROKER_URL_RULE. */
export function parseBrokerUrl(url: string): BrokerAddress | undefined {
  const m = BROKER_URL.exec(url);
  if (!m) return undefined;
  const port = m[2] ? Number(m[2].slice(1)) : MQTTS_DEFAULT_PORT;
  return { host: m[1].replace(/^\[|\]$/g, ''), port, url: `mqtts://${m[1]}:${port}` };
}
