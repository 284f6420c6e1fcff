import type { GeneratedPgpKey } from './pgp-ops.d.mts';
export function fastGenerateV4Key(a: { name: string; email: string; date: string }): GeneratedPgpKey;
