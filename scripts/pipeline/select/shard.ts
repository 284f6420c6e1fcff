// Deterministic sharding for CI matrices: a device's shard depends only on its id, so adding a
// device never moves the others, and every machine computes the same split with no coordinator.
import { createHash } from 'node:crypto';

export function parseShard(spec: string): { k: number; n: number } {
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  if (!m) throw new Error(`--shard must look like K/N (e.g. 2/8), not "${spec}"`);
  const k = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1 || k < 1 || k > n) throw new Error(`--shard ${spec}: K must be from 1 to N`);
  return { k, n };
}

export function shardOf(id: string, n: number): number {
  const h = createHash('sha256').update(id).digest();
  return (h.readUInt32BE(0) % n) + 1;
}

export function inShard(id: string, shard: { k: number; n: number }): boolean {
  return shardOf(id, shard.n) === shard.k;
}
