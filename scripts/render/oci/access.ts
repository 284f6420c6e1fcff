// Who may read or write which repository: the token issuer's access file (edgeforge-registry-access/1), pure.
// Distribution's own htpasswd auth lets every valid user read every repository; behind `auth: token` the
// registry grants exactly what a token lists, and the issuer lists for a device only its site's repository.
export const ACCESS_FORMAT = 'edgeforge-registry-access/1';

export type Action = 'pull' | 'push';

export interface AccessRule {
  /** an exact repository name, or "<prefix>/*" for everything under a prefix */
  repository: string;
  actions: Action[];
}

export interface AccessUser {
  name: string;
  /** sha256 (hex) of the password */
  verifier: string;
  access: AccessRule[];
}

export interface AccessFile {
  format: typeof ACCESS_FORMAT;
  /** the registry's auth.token.service (the token's audience) */
  service: string;
  /** the registry's auth.token.issuer */
  issuer: string;
  users: AccessUser[];
}

function matches(rule: string, repository: string): boolean {
  return rule.endsWith('/*') ? repository.startsWith(rule.slice(0, -1)) : rule === repository;
}

/** The actions of `wanted` a user's rules allow on `repository` (none for anything else). */
export function grantedActions(user: Pick<AccessUser, 'access'>, repository: string, wanted: string[]): Action[] {
  const allowed = new Set(user.access.filter((r) => matches(r.repository, repository)).flatMap((r) => r.actions));
  return (['pull', 'push'] as Action[]).filter((a) => wanted.includes(a) && allowed.has(a));
}

/** A scope parameter as registries send it: "repository:<name>:<action>[,<action>]". */
export function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const m = /^([a-z]+):(.+):([a-z*,]*)$/.exec(scope);
  return m ? { type: m[1], name: m[2], actions: m[3].split(',').filter(Boolean) } : undefined;
}

export function checkAccessFile(data: unknown, file: string): AccessFile {
  const a = data as AccessFile;
  if (!a || a.format !== ACCESS_FORMAT || typeof a.service !== 'string' || typeof a.issuer !== 'string' || !Array.isArray(a.users)) {
    throw new Error(`${file}: not an ${ACCESS_FORMAT} file (written by edgeforge registry config)`);
  }
  for (const u of a.users) if (!/^[0-9a-f]{64}$/.test(u.verifier ?? '') || !Array.isArray(u.access)) throw new Error(`${file}: user "${u.name}" has no valid verifier or access list`);
  return a;
}
