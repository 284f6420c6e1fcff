// The text `edgeforge status` prints: per-site counts, then the devices that need a person.
import { BUCKETS, BUCKET_LABELS, type FleetStatus } from './summary.ts';

export function statusText(s: FleetStatus & { broker: string; manifest: boolean; cleared?: string[] }): string {
  const cols = ['devices', ...BUCKETS.map((b) => BUCKET_LABELS[b])];
  const siteW = Math.max(5, ...s.sites.map((x) => x.site.length));
  const row = (name: string, n: number, c: Record<string, number>) =>
    [name.padEnd(siteW), String(n).padStart(cols[0].length), ...BUCKETS.map((b) => String(c[b]).padStart(BUCKET_LABELS[b].length))].join('  ');
  const total = s.sites.reduce((a, x) => a + x.devices, 0);
  const seen = total - s.totals.neverSeen;
  const ign = Object.entries(s.ignored).filter(([, n]) => n > 0);
  const L = [
    `fleet status at ${s.at} from ${s.broker}: ${seen} of ${total} device(s) have a status${s.manifest ? '' : ' (no manifest.json in the output dir: bundles not compared with a build)'}`,
    '',
    ['site'.padEnd(siteW), ...cols].join('  '),
    ...s.sites.map((x) => row(x.site, x.devices, x.counts)),
    row('total', total, s.totals),
  ];
  if (ign.length) L.push('', `ignored statuses: ${ign.map(([k, n]) => `${n} ${k}`).join(', ')} (not JSON of format edgeforge-status/1, too big, or on a topic that is no device of this inventory)`);
  if (s.inactive.length) {
    L.push('', `devices no longer in the fleet with a status on the broker (${s.inactive.length}; not counted above):`, ...s.inactive.map((x) => `  ${x.id}  ${x.reason}`));
    if (s.cleared?.length) L.push(`cleared from the broker (--clear-departed): ${s.cleared.join(', ')}`);
  }
  if (s.attention.length) {
    const idW = Math.max(...s.attention.map((a) => a.id.length));
    L.push('', `needs a person (${s.attention.length}):`, ...s.attention.map((a) => `  ${a.id.padEnd(idW)}  ${BUCKET_LABELS[a.bucket].padEnd(10)}  ${a.reason}`));
  } else if (!s.inactiveNeedsPerson.length) L.push('', 'nothing needs a person');
  if (s.totals.silent || s.totals.neverSeen) {
    L.push(
      '',
      'silent or never seen may also mean refused: the broker tells no other client why it refused one, and its log does not name the',
      'device — "New connection from ADDRESS:PORT on port N." then "Client <unknown> disconnected, not authorised."; on the broker host:',
      '  journalctl -u mosquitto | grep -B1 "not authorised"',
    );
  }
  return L.join('\n');
}
