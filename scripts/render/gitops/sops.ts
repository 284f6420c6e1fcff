// .sops.yaml: who can decrypt which path. sops uses the FIRST creation rule whose path_regex matches, so
// rules go from the most specific to the least: a device's directory (that device + admins), its site
// overlay (the site key + every Flux device of the site + admins), its region overlay and everything else (site keys +
// admins: devices read those through the site key in their sops-gpg Secret, which keeps a fleet-wide
// secret at ~250 recipients instead of 10,000).
import type { Fleet } from '../../inventory/fleet.ts';
import { runsFlux } from '../flux/sync.ts';
import { toYaml } from '../yaml.ts';
import { managedYaml } from './marker.ts';

export interface PgpPublic {
  /** 40 hex digits */
  fingerprint: string;
  publicArmored: string;
}

export interface GitopsPublicKeys {
  /** device id -> its SOPS public key */
  deviceSops: Map<string, PgpPublic>;
  /** "<region>/<site>" -> the site SOPS public key */
  siteSops: Map<string, PgpPublic>;
  admins: (PgpPublic & { name?: string })[];
}

export interface SopsRule {
  /** what the rule covers, for comments and reports */
  scope: string;
  path_regex: string;
  recipients: string[];
}

/** Kubernetes Secrets: only the values are encrypted, so diffs and kustomize still see the structure. */
export const ENCRYPTED_REGEX = '^(data|stringData)$';

const fpr = (k: PgpPublic) => k.fingerprint.replace(/\s+/g, '').toUpperCase();
const uniqSorted = (xs: string[]) => [...new Set(xs)].sort();

export function missingKeys(fleet: Fleet, keys: GitopsPublicKeys): string[] {
  const problems: string[] = [];
  const devices = fleet.active
    .filter(runsFlux)
    .filter((d) => !keys.deviceSops.has(d.id))
    .map((d) => d.id);
  if (devices.length) problems.push(`no SOPS public key for device(s) ${devices.slice(0, 10).join(', ')}${devices.length > 10 ? ` and ${devices.length - 10} more` : ''}`);
  const sites = fleet.sites.filter((s) => s.devices.some(runsFlux) && !keys.siteSops.has(s.id)).map((s) => s.id);
  if (sites.length) problems.push(`no SOPS public key for site(s) ${sites.slice(0, 10).join(', ')}${sites.length > 10 ? ` and ${sites.length - 10} more` : ''}`);
  if (keys.admins.length === 0) problems.push('no admin recipients');
  return problems;
}

export function sopsRules(fleet: Fleet, keys: GitopsPublicKeys): SopsRule[] {
  const admins = keys.admins.map(fpr);
  const rules: SopsRule[] = [];
  const siteKey = (id: string) => (keys.siteSops.has(id) ? [fpr(keys.siteSops.get(id)!)] : []);
  for (const s of fleet.sites) {
    for (const d of s.devices.filter(runsFlux)) {
      const k = keys.deviceSops.get(d.id);
      rules.push({ scope: `device ${d.id}`, path_regex: `(^|/)clusters/${d.region}/${d.site}/${d.id}/`, recipients: uniqSorted([...(k ? [fpr(k)] : []), ...admins]) });
    }
  }
  for (const s of fleet.sites) {
    const devs = s.devices
      .filter(runsFlux)
      .map((d) => keys.deviceSops.get(d.id))
      .filter((k): k is PgpPublic => !!k)
      .map(fpr);
    rules.push({ scope: `site ${s.id}`, path_regex: `(^|/)(clusters|overlays/sites)/${s.region}/${s.name}/`, recipients: uniqSorted([...siteKey(s.id), ...devs, ...admins]) });
  }
  for (const r of fleet.regions) {
    const siteKeys = r.sites.flatMap((s) => siteKey(s.id));
    rules.push({ scope: `region ${r.name}`, path_regex: `(^|/)(clusters|overlays/regions|overlays/sites)/${r.name}/`, recipients: uniqSorted([...siteKeys, ...admins]) });
  }
  rules.push({ scope: 'the whole fleet (infrastructure/, apps/, anything else)', path_regex: '.*', recipients: uniqSorted([...fleet.sites.flatMap((s) => siteKey(s.id)), ...admins]) });
  return rules;
}

export function renderSopsConfig(fleet: Fleet, keys: GitopsPublicKeys): string {
  const rules = sopsRules(fleet, keys).map((r) => ({ path_regex: r.path_regex, encrypted_regex: ENCRYPTED_REGEX, pgp: r.recipients.join(',') }));
  return managedYaml(
    toYaml({ creation_rules: rules }),
    [
      `SOPS recipients for fleet ${fleet.name}. sops uses the first rule whose path_regex matches, so the most`,
      'specific come first: a device directory, a site, a region, then everything else. Public keys: .sops/.',
      'Encrypt: sops --encrypt --in-place clusters/<region>/<site>/<device>/secret.yaml',
      'After a key rotation or revocation: edgeforge gitops --to . && sops updatekeys <each encrypted file>',
    ].join('\n'),
  );
}
