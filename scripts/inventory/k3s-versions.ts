// K3s release numbers: parse, order, and what edgeforge knows about a release line. One home for the
// facts the upgrade rings (docs/day2.md), validate and the plan use.
export interface K3sVersion {
  minor: number;
  patch: number;
  /** the +k3sN build */
  build: number;
  text: string;
}

/**
 * The K3s lines edgeforge renders correctly: from v1.30, the first whose Kubernetes serves
 * admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (revoking an agent applies one), to the newest
 * whose Kubernetes API is on file (upstream/kubernetes/api.json; test/conformance proves every line in between
 * takes every object edgeforge writes). A line outside them is a typo or one nobody checked edgeforge against.
 */
export const KNOWN_K3S_MINORS = { first: 30, last: 36 } as const;

/**
 * Upstream end of life per Kubernetes minor, which K3s lines follow: kubernetes/website data/releases/eol.yaml
 * (1.30-1.32) and kubernetes.io/releases/1.3X (1.33-1.36), read 2026-12-07. A pinned line past it gets no fixes.
 */
export const K3S_LINE_EOL: Record<number, string> = {
  30: '2025-07-15',
  31: '2025-11-11',
  32: '2026-02-28',
  33: '2026-06-28',
  34: '2026-10-27',
  35: '2027-02-28',
  36: '2027-06-28',
};

/** Why a pinned release's line is out of upstream support on `now`, or undefined. */
export function k3sLineEolProblem(v: string, now: Date): string | undefined {
  const p = parseK3sVersion(v);
  const eol = p && K3S_LINE_EOL[p.minor];
  if (!eol || now.getTime() < Date.parse(`${eol}T00:00:00Z`)) return undefined;
  const supported = Object.entries(K3S_LINE_EOL)
    .filter(([, d]) => now.getTime() < Date.parse(`${d}T00:00:00Z`))
    .map(([m]) => `v1.${m}`);
  return `K3s ${v}: the v1.${p.minor} line reached its upstream end of life on ${eol} and gets no more fixes; move to a supported line (${supported.join(', ') || 'a newer one'}) with a canary rollout (docs/day2.md)`;
}

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
  if (!p) return `${JSON.stringify(v)} is not a K3s release like v1.36.5+k3s1`;
  if (p.minor < KNOWN_K3S_MINORS.first)
    return `K3s ${v}: edgeforge renders for the v1.${KNOWN_K3S_MINORS.first} … v1.${KNOWN_K3S_MINORS.last} lines — revoking an agent applies an admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy, which Kubernetes serves from 1.30 on (before, "no matches for kind" would fail the whole apply)`;
  if (p.minor > KNOWN_K3S_MINORS.last)
    return `K3s ${v} is not a release line edgeforge knows (v1.${KNOWN_K3S_MINORS.first} … v1.${KNOWN_K3S_MINORS.last}): no Kubernetes API of v1.${p.minor} is on file to check what edgeforge writes against (npm run upstream:kubernetes reads a newer one when its client is published); check the number against the K3s releases`;
  if (p.build < 1) return `K3s ${v}: the build suffix starts at +k3s1`;
  return undefined;
}

/** The image tag of a release (OCI tags cannot hold "+"): v1.36.5+k3s1 -> v1.36.5-k3s1 */
export function k3sImageTag(v: string): string {
  return v.replace('+', '-');
}

/**
 * K3s's certificate lifetimes as its docs state them: the home of the words the plan prints.
 * docs.k3s.io/cli/certificate, "Client and Server Certificates": valid for 365 days from issuance; expired or within
 * 120 days of expiry, renewed every time K3s starts — 90 days before the May 2025 releases (v1.33.1+k3s1,
 * v1.32.5+k3s1, v1.31.9+k3s1, v1.30.13+k3s1). docs.k3s.io/advanced, "Certificate Authority Certificates": the
 * self-signed CAs are generated at the first server's first start, valid for 10 years, not renewed automatically.
 */
const RENEW_120_FROM: Record<number, number> = { 30: 13, 31: 9, 32: 5, 33: 1 };
export const K3S_CERT_SOURCES = {
  leaf: 'docs.k3s.io/cli/certificate, "Client and Server Certificates"',
  ca: 'docs.k3s.io/advanced, "Certificate Authority Certificates"',
  renew120From: Object.entries(RENEW_120_FROM)
    .map(([minor, patch]) => `v1.${minor}.${patch}`)
    .join(', '),
};

/** How many days before expiry K3s renews its leaf certificates when it starts (K3S_CERT_SOURCES.leaf). */
export function k3sRenewalDays(v: string): number {
  const p = parseK3sVersion(v);
  if (!p) return 90;
  if (p.minor > 33) return 120;
  return RENEW_120_FROM[p.minor] !== undefined && p.patch >= RENEW_120_FROM[p.minor] ? 120 : 90;
}

/**
 * The HelmChart CRD on file for each K3s line (upstream/crds/helm-controller@<commit>): the lines whose releases
 * embed helm-controller v0.17.x ("Embedded Component Versions", github.com/k3s-io/k3s/releases: 1.34.9, 1.35.4-1.35.6,
 * 1.36.x). Older lines' HelmChart schema is not on file, and is reported as unchecked.
 */
export const K3S_HELM_CONTROLLER: Record<number, string> = {
  34: 'e1c8c80e',
  35: 'e1c8c80e',
  36: 'e1c8c80e',
};
