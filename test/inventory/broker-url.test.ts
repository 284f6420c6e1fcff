// The one broker-URL rule (scripts/inventory/broker-url.ts): what the schema accepts is what the resolved fleet
// parses and what `edgeforge status --broker` takes, with one default port.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BROKER_URL, MQTTS_DEFAULT_PORT, parseBrokerUrl } from '../../scripts/inventory/broker-url.ts';
import { generateInventory } from '../../scripts/inventory/generate.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { runCli } from '../helpers.ts';

const GOOD: [string, { host: string; port: number; url: string }][] = [
  ['mqtts://mqtt.example.com', { host: 'mqtt.example.com', port: 8883, url: 'mqtts://mqtt.example.com:8883' }],
  ['mqtts://mqtt.example.com/', { host: 'mqtt.example.com', port: 8883, url: 'mqtts://mqtt.example.com:8883' }],
  ['mqtts://10.0.2.2:18883', { host: '10.0.2.2', port: 18883, url: 'mqtts://10.0.2.2:18883' }],
  ['mqtts://[fd00::1]:8884/', { host: 'fd00::1', port: 8884, url: 'mqtts://[fd00::1]:8884' }],
  ['mqtts://[::1]', { host: '::1', port: 8883, url: 'mqtts://[::1]:8883' }],
];
const BAD = ['mqtt://mqtt.example.com:1883', 'mqtts://', 'mqtts://host:port', 'mqtts://host:8883/topic', 'https://host', 'mqtts://user@host', 'mqtts://fd00::1'];

const fleetWith = (broker: string) => loadInventoryBytes(Buffer.from(generateInventory(2, { name: 'b' }) + `status: { broker: "${broker}", caFile: ca.pem }\n`), 'f.yaml');

describe('the broker-URL rule', () => {
  it('parses host, port (default 8883) and a normalized URL; refuses the rest', () => {
    expect(MQTTS_DEFAULT_PORT).toBe(8883);
    for (const [url, want] of GOOD) expect(parseBrokerUrl(url), url).toEqual(want);
    for (const url of BAD) expect(parseBrokerUrl(url), url).toBeUndefined();
  });

  it("is the schema's rule (and its JSON schema's pattern), resolved once into Fleet.status", () => {
    for (const [url, want] of GOOD) expect(fleetWith(url).status!.broker, url).toEqual(want);
    for (const url of BAD) {
      let problems: { message: string }[] = [];
      try {
        fleetWith(url);
      } catch (e) {
        problems = (e as { problems: { message: string }[] }).problems;
      }
      expect(
        problems.map((p) => p.message),
        url,
      ).toEqual([expect.stringContaining('must be mqtts://HOST[:PORT] (TLS only; default port 8883)')]);
    }
    const json = JSON.parse(readFileSync('inventory/schema.json', 'utf8'));
    expect(JSON.stringify(json)).toContain(JSON.stringify(BROKER_URL.source));
  });

  it('is what `edgeforge status --broker` checks, before it asks for anything else', async () => {
    for (const url of BAD.slice(0, 3)) {
      const r = await runCli(['status', '--broker', url]);
      expect(r.code, url).toBe(2);
      expect(r.stderr).toContain(`--broker must be mqtts://HOST[:PORT] (TLS only; default port 8883), not "${url}"`);
    }
  });
});
