// /etc/rancher/k3s/config.yaml for one device, derived from its profile, role and site.
// Every key must be a real K3s flag: the render tests check each rendered key against the pinned release line's
// flag lists in test/fixtures/k3s-flags/ (K3s logs and ignores unknown keys, so nothing else would catch a typo).
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { SECRETS_DIR } from '../../device/layout.ts';
import { kubeletArgs, tuningFor } from './tuning.ts';
import { toYaml, yamlComment } from '../yaml.ts';

/** Where the first-boot program puts the device's K3s secrets (inside the encrypted volume). */
export const K3S_TOKEN_FILE = `${SECRETS_DIR}/k3s-token`;
export const K3S_AGENT_TOKEN_FILE = `${SECRETS_DIR}/k3s-agent-token`;

export interface ConfigEntry {
  key: string;
  value: string | boolean | number | string[];
  comment?: string;
}

export function k3sConfigEntries(d: ResolvedDevice, fleet: Pick<Fleet, 'k3s'>): ConfigEntry[] {
  const t = tuningFor(d.profile, d.role);
  const e: ConfigEntry[] = [];
  e.push({ key: 'node-name', value: d.id, comment: 'unique per device: the inventory id' });
  if (d.cluster.kind === 'multi-node-agent') {
    e.push({ key: 'server', value: d.cluster.serverUrl, comment: `joins ${d.cluster.serverId}` });
    e.push({
      key: 'token-file',
      value: K3S_AGENT_TOKEN_FILE,
      comment: `this agent's own bootstrap token for ${d.siteId}'s cluster (its server accepts it, no other agent holds it; valid for k3s.joinWindow after issue), kept on the encrypted volume`,
    });
  } else {
    e.push({ key: 'token-file', value: K3S_TOKEN_FILE, comment: 'generated per device by edgeforge, kept on the encrypted volume' });
    if (d.cluster.kind === 'multi-node-server')
      e.push({
        key: 'agent-token-file',
        value: K3S_AGENT_TOKEN_FILE,
        comment: `no agent carries it (without it agents could join with the server token): ${d.cluster.agents.join(', ')} join with their own bootstrap tokens`,
      });
    e.push({ key: 'write-kubeconfig-mode', value: '0600', comment: 'kubeconfig is cluster-admin: root only' });
    e.push({ key: 'secrets-encryption', value: true, comment: 'Secrets encrypted at rest in the datastore' });
    e.push({ key: 'flannel-backend', value: 'wireguard-native', comment: 'pod traffic between nodes is encrypted (needs the wireguard kernel module)' });
    if (fleet.k3s.disable.length) e.push({ key: 'disable', value: [...fleet.k3s.disable], comment: 'not needed on an edge node; each frees memory' });
    if (fleet.k3s.clusterCidr) e.push({ key: 'cluster-cidr', value: fleet.k3s.clusterCidr });
    if (fleet.k3s.serviceCidr) e.push({ key: 'service-cidr', value: fleet.k3s.serviceCidr });
    if (d.network.mode === 'static') e.push({ key: 'tls-san', value: [d.network.ip, d.id], comment: 'the API certificate names the device address' });
    // single-node servers use SQLite (no cluster-init): etcd costs ~130 MB more and needs quorum
  }
  if (d.network.mode === 'static') e.push({ key: 'node-ip', value: d.network.ip });
  if (d.registryMirror && supportsNoDefaultEndpoint(fleet.k3s.version)) {
    e.push({
      key: 'disable-default-registry-endpoint',
      value: true,
      comment: `images of ${d.registryMirror.registries.join(', ')} come only through the site mirror (registries.yaml): no fallback to the public registry behind the site firewall`,
    });
  }
  e.push({ key: 'protect-kernel-defaults', value: true, comment: 'kubelet refuses to run if the kernel sysctls were changed (the seed sets them)' });
  const labels = [`edgeforge.dev/site=${d.site}`, `edgeforge.dev/region=${d.region}`, `edgeforge.dev/profile=${d.profileName}`, ...Object.entries(d.labels).map(([k, v]) => `${k}=${v}`)];
  e.push({ key: 'node-label', value: labels });
  e.push({
    key: 'kubelet-arg',
    value: kubeletArgs(t),
    comment: `${t.ramMiB} MiB RAM (about ${t.usableMiB} MiB usable by Linux), ${t.role}: reserved ${t.systemReservedMiB} MiB (OS) + ${t.kubeReservedMiB} MiB (K3s), hard eviction at ${t.evictionHardMiB} MiB free, about ${t.allocatableMiB} MiB allocatable to pods (system pods such as Flux included)`,
  });
  return e;
}

/** Deterministic YAML with each comment beside its key (the writer emits one key at a time, in order). */
export function renderConfigYaml(entries: ConfigEntry[], header: string[] = []): string {
  let out = header.length ? yamlComment(header.join('\n')) : '';
  for (const { key, value, comment } of entries) {
    if (comment) out += yamlComment(comment);
    out += toYaml({ [key]: value });
  }
  return out;
}

export function renderK3sConfig(d: ResolvedDevice, fleet: Pick<Fleet, 'k3s'>): string {
  return renderConfigYaml(k3sConfigEntries(d, fleet), [`K3s config for ${d.id} (${d.profileName}, ${d.cluster.kind}) — written by edgeforge; edit the inventory, not this file`]);
}

/** --disable-default-registry-endpoint exists from the January 2024 releases (v1.26.13, v1.27.10, v1.28.6, v1.29.1) on. */
export function supportsNoDefaultEndpoint(version: string): boolean {
  const m = /^v1\.(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [minor, patch] = [Number(m[1]), Number(m[2])];
  const since: Record<number, number> = { 26: 13, 27: 10, 28: 6, 29: 1 };
  return minor >= 30 || (since[minor] !== undefined && patch >= since[minor]);
}

/** registries.yaml where the site has a pull-through mirror. */
export function renderRegistries(d: ResolvedDevice): string | undefined {
  if (!d.registryMirror) return undefined;
  const url = d.registryMirror.url;
  const mirrors = Object.fromEntries(d.registryMirror.registries.map((r) => [r, { endpoint: [url] }]));
  return yamlComment('registry mirror for this site — written by edgeforge') + toYaml({ mirrors });
}
