// What expires: anything edgeforge writes with an end date is checked against the clock when it is written
// (not against SOURCE_DATE_EPOCH, which only makes builds reproducible): already expired, or inside the margin
// in which edgeforge would renew it, is a warning — an error with --strict. The plan shows the same dates.
import { X509Certificate } from 'node:crypto';
import { refOf, type TreeObject } from './check-objects.ts';

export interface Expiry {
  /** what expires, for people: "join token of agent changwon2-press-001" */
  what: string;
  /** where: a tree path, or the inventory field */
  where: string;
  /** RFC 3339 */
  expires: string;
  /** renewed when fewer than this many days are left */
  marginDays: number;
}

export interface ExpiryFinding extends Expiry {
  state: 'expired' | 'due';
  message: string;
}

const DAY = 86_400_000;

/** The join tokens of a tree: bootstrap-token Secrets carry their expiry in clear (edgeforge.dev/expires). */
export function joinTokenExpiries(objects: TreeObject[], joinWindowDays: number): Expiry[] {
  return objects
    .filter((t) => t.object.kind === 'Secret' && t.object.type === 'bootstrap.kubernetes.io/token')
    .flatMap((t) => {
      const meta = (t.object.metadata ?? {}) as { labels?: Record<string, string>; annotations?: Record<string, string> };
      const expires = meta.annotations?.['edgeforge.dev/expires'];
      if (!expires) return [];
      const agent = meta.labels?.['edgeforge.dev/agent'];
      // edgeforge rewrites a token with less than half its window left (lifecycle/join-tokens.ts)
      return [{ what: `join token ${refOf(t.object)}${agent ? ` of agent ${agent}` : ''}`, where: t.path, expires, marginDays: joinWindowDays / 2 }];
    });
}

/** A PEM certificate's (or bundle's) end date; `marginDays` before it a renewal is due. */
export function certificateExpiries(pem: string, what: string, where: string, marginDays = 30): Expiry[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => {
    const c = new X509Certificate(b);
    return {
      what: `${what} (${c.subject.split('\n').find((l) => l.startsWith('CN=')) ?? c.subject.split('\n')[0]})`,
      where,
      expires: new Date(c.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      marginDays,
    };
  });
}

export function expiryFindings(items: Expiry[], now: Date): ExpiryFinding[] {
  const out: ExpiryFinding[] = [];
  for (const e of items) {
    const t = Date.parse(e.expires);
    if (Number.isNaN(t)) continue;
    const days = Math.floor((t - now.getTime()) / DAY);
    if (t <= now.getTime()) out.push({ ...e, state: 'expired', message: `${e.where}: ${e.what} expired on ${e.expires} (${-days} days ago)` });
    else if (t - now.getTime() < e.marginDays * DAY)
      out.push({ ...e, state: 'due', message: `${e.where}: ${e.what} expires on ${e.expires}, in ${days} days: inside its ${e.marginDays}-day renewal margin` });
  }
  return out;
}
