// Each K3s agent joins its site's cluster with its own bootstrap token ("<6>.<16>", [a-z0-9], kubeadm's format,
// which K3s accepts as a join token), never with a secret shared with the server or other agents.
// The token is derived from the agent's own stored per-device secret (its identity's `k3sToken`, which an agent
// uses for nothing else and which never leaves keys/): the same keys/ give the same token (reproducible builds),
// `keys rotate --device` gives a new one, and nothing new needs storing.
import { createHmac } from 'node:crypto';
import type { DeviceIdentity } from './types.ts';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface JoinToken {
  /** public: names the Secret bootstrap-token-<id> */
  id: string;
  secret: string;
  /** "<id>.<secret>": what the agent presents */
  token: string;
}

/** 22 characters from an HMAC-SHA256 stream, bytes >= 252 skipped so each character is uniform over 36. */
export function agentJoinToken(agent: Pick<DeviceIdentity, 'id' | 'k3sToken'>): JoinToken {
  const chars: string[] = [];
  for (let block = 0; chars.length < 22; block++) {
    const bytes = createHmac('sha256', agent.k3sToken).update(`edgeforge k3s bootstrap token v1\0${agent.id}\0${block}`).digest();
    for (const b of bytes) if (b < 252 && chars.length < 22) chars.push(ALPHABET[b % 36]);
  }
  const id = chars.slice(0, 6).join('');
  const secret = chars.slice(6).join('');
  return { id, secret, token: `${id}.${secret}` };
}

/** "30d" -> 30: how long a join token lasts (k3s.joinWindow, default 30d). */
export function joinWindowDays(fleet: { k3s: { joinWindow?: string } }): number {
  return windowDays(fleet.k3s.joinWindow ?? '30d');
}

function windowDays(joinWindow: string): number {
  const days = Number(/^(\d+)d$/.exec(joinWindow)?.[1] ?? NaN);
  if (!Number.isInteger(days) || days < 1) throw new Error(`joinWindow "${joinWindow}" is not whole days like 30d`);
  return days;
}

/** "30d" -> the expiry: issued + that many days, to the second (RFC 3339, UTC). */
export function joinTokenExpiry(issuedEpoch: number, joinWindow: string): string {
  return new Date((issuedEpoch + windowDays(joinWindow) * 86400) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
