// A test fleet for pinned image archives: inventory/example.yaml with an airgap K3s install and Flux as a
// bundle (a minimal install.yaml naming two controller images) whose `images` list the caller writes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const SC = 'ghcr.io/fluxcd/source-controller:v1.9.6';
export const KC = 'ghcr.io/fluxcd/kustomize-controller:v1.9.6';

/** a minimal Flux install.yaml: the namespace and the two controllers the example fleet runs */
export function fluxBundle(): string {
  const dep = (n: string, image: string) =>
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${n}\n  namespace: flux-system\n  labels:\n    app.kubernetes.io/version: v2.9.6\nspec:\n  selector:\n    matchLabels:\n      app: ${n}\n  template:\n    metadata:\n      labels:\n        app: ${n}\n    spec:\n      containers:\n        - name: manager\n          image: ${image}\n`;
  return [`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n`, dep('source-controller', SC), dep('kustomize-controller', KC)].join('---\n');
}

/** one `images` entry (sha256 quoted: an all-digit value would read as a number) */
export const entry = (image: string, file: string, sha: string) => `        - image: ${image}\n          file: ${file}\n          sha256: "${sha}"\n`;

/** the example fleet, airgap K3s (pins given or dummies), Flux from bundles/flux/install.yaml with `images` */
export function airgapInventory(
  images: string,
  k3s: { binary: string; images: string; installScript: string } = { binary: 'a'.repeat(64), images: 'b'.repeat(64), installScript: 'c'.repeat(64) },
): string {
  const example = readFileSync('inventory/example.yaml', 'utf8');
  const fluxSha = createHash('sha256').update(fluxBundle()).digest('hex');
  const out = example
    .replace(
      /  install:\n(    #[^\n]*\n)*    mode: online\n    installScriptSha256: "0+"\n/,
      `  install:\n    mode: airgap\n    bundle: bundles/k3s\n    sha256: { binary: "${k3s.binary}", images: "${k3s.images}", installScript: "${k3s.installScript}" }\n`,
    )
    .replace(/    install: \{ mode: helm[^\n]*\n/, `    install:\n      mode: bundle\n      file: bundles/flux/install.yaml\n      sha256: "${fluxSha}"\n      images:\n${images}`);
  if (out === example || !out.includes('mode: airgap') || !out.includes('mode: bundle')) throw new Error('inventory/example.yaml changed: the airgap fixture no longer applies');
  return out;
}
