// K3s release numbers: parse, order, and what edgeforge knows about a release line. One home for the
// facts the upgrade rings (docs/day2.md), validate and the plan use.
export interface K3sVersion {
  minor: number;
  patch: number;
  /** the +k3sN build */
  build: number;
  text: string;
}

/** The K3s minor lines edgeforge knows (v1.26 … v1.35): a minor outside them is a typo or a release
 *  nobody checked edgeforge against yet. */
export const KNOWN_K3S_MINORS = { first: 26, last: 35 } as const;

export function parseK3sVersion(v: string): K3sVersion | undefined {
  const m = /^v1\.(\d+)\.(\d+)\+k3s(\d+)$/.exec(v);
  if (!m) return undefined;
  return { minor: Number(m[1]), patch: Number(m[2]), build: Number(m[3]), text: v };
}

/** negative: a is older than b; 0: the same release; positive: a is newer */
export function compareK3s(a: string, b: string): number {
  const x = parseK3sVersion(a);
  const y = parseK3sVersion(b);
  if (!x || !y) throw new Error(`not a K3s release: ${!x ? a : b}`);
  return x.minor - y.minor || x.patch - y.patch || x.build - y.build;
}

/** Why this version is not one edgeforge can roll out, or undefined. */
export function k3sVersionProblem(v: string): string | undefined {
  const p = parseK3sVersion(v);
  if (!p) return `${JSON.stringify(v)} is not a K3s release like v1.31.4+k3s1`;
  if (p.minor < KNOWN_K3S_MINORS.first || p.minor > KNOWN_K3S_MINORS.last)
    return `K3s ${v} is not a release line edgeforge knows (v1.${KNOWN_K3S_MINORS.first} … v1.${KNOWN_K3S_MINORS.last}); check the number against the K3s releases`;
  if (p.build < 1) return `K3s ${v}: the build suffix starts at +k3s1`;
  return undefined;
}

/** The image tag of a release (OCI tags cannot hold "+"): v1.31.4+k3s1 -> v1.31.4-k3s1 */
export function k3sImageTag(v: string): string {
  return v.replace('+', '-');
}

/**
 * How many days before expiry K3s renews its leaf certificates when it starts: 90, and 120 from v1.31.9,
 * v1.32.5 and v1.33.1 on (K3s release notes). Leaves last 365 days; the CAs 10 years.
 */
export function k3sRenewalDays(v: string): number {
  const p = parseK3sVersion(v);
  if (!p) return 90;
  const from: Record<number, number> = { 31: 9, 32: 5, 33: 1 };
  if (p.minor > 33) return 120;
  return from[p.minor] !== undefined && p.patch >= from[p.minor] ? 120 : 90;
}
