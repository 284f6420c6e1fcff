// The one clock of the CLI: the real time, or EDGEFORGE_NOW (epoch seconds) where a test fixes it. What expires
// (join tokens, certificates, status reports) is judged against it; SOURCE_DATE_EPOCH only makes builds reproducible.
import { UsageError } from '../util/errors.ts';
import type { Io } from './command.ts';

export function clock(io: Pick<Io, 'env'>): Date {
  const v = io.env.EDGEFORGE_NOW;
  if (v === undefined || v === '') return new Date();
  if (!/^\d+$/.test(v)) throw new UsageError(`EDGEFORGE_NOW must be seconds since 1970, not "${v}"`);
  return new Date(Number(v) * 1000);
}
