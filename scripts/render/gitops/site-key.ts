// A device's SOPS keys delivered through Git after its site key was rotated (`revoke`, `keys rotate --site
// --gitops`): clusters/<r>/<s>/<d>/sops-keys/ holds the `sops-gpg` Secret with the device's own key and the
// new site key, SOPS-encrypted to that device's key alone, and a kustomization.yaml listing it. The Flux
// Kustomization "sops-keys" applies it with the device key, before "device" (which dependsOn it) reads
// site secrets re-encrypted to the new key. Pure: the caller encrypts and writes.
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { FLUX_NS, SOPS_SECRET, sopsKeysPath } from '../flux/sync.ts';
import { sopsSecretKeys } from '../flux/secrets.ts';
import { toYaml } from '../yaml.ts';

/** The encrypted Secret's file name inside sops-keys/. */
export const SOPS_KEYS_FILE = 'sops-gpg.yaml';

const b64 = (s: string) => Buffer.from(s.endsWith('\n') ? s : s + '\n', 'utf8').toString('base64');

/** The plaintext Secret (to be SOPS-encrypted to the device key before it goes anywhere). */
export function sopsKeysSecret(d: Pick<ResolvedDevice, 'id' | 'region' | 'site'>, devicePrivateArmored: string, sitePrivateArmored: string): Record<string, unknown> {
  const [devKey, siteKey] = sopsSecretKeys(d, true);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: SOPS_SECRET,
      namespace: FLUX_NS,
      labels: { 'app.kubernetes.io/managed-by': 'edgeforge', 'edgeforge.dev/device': d.id },
      // never pruned: without this Secret the device decrypts nothing
      annotations: { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' },
    },
    type: 'Opaque',
    // the device key stays (it decrypts this very file next time); the site key entry is replaced
    data: { [devKey]: b64(devicePrivateArmored), [siteKey]: b64(sitePrivateArmored) },
  };
}

/** sops-keys/kustomization.yaml: empty in the scaffold, listing the Secret once a rotation delivered one. */
export function sopsKeysKustomization(d: Pick<ResolvedDevice, 'id'>, withSecret: boolean): string {
  const header = [
    `# ${d.id}'s SOPS keys from Git: Flux Kustomization "sops-keys" applies this directory, decrypted with the`,
    '# device key alone; Kustomization "device" depends on it. Created by edgeforge; `edgeforge revoke` and',
    '# `edgeforge keys rotate --site --gitops` rewrite it when they deliver a new site key (`gitops --to` never does).',
  ];
  return header.join('\n') + '\n' + toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: withSecret ? [SOPS_KEYS_FILE] : [] });
}

export function sopsKeysFiles(d: Pick<ResolvedDevice, 'region' | 'site' | 'id'>): { kustomization: string; secret: string } {
  const dir = sopsKeysPath(d);
  return { kustomization: `${dir}/kustomization.yaml`, secret: `${dir}/${SOPS_KEYS_FILE}` };
}
