// Fixed device secrets for tests and the render benchmark: derived from the device id, so every run
// renders the same bytes. Never used for a real fleet (real ones come from keys/ via the keys stage).
import { agentJoinToken } from '../keys/join-token.ts';
import { createHash } from 'node:crypto';
import { armor, enums } from '../util/openpgp.mjs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sshKeyPairFromSeed } from '../keys/ssh.ts';
import type { DeviceSecrets } from '../render/device.ts';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { loadInventoryFile } from '../inventory/load.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXAMPLE = path.join(REPO, 'inventory/example.yaml');

const h = (s: string) => createHash('sha256').update(s).digest();

export function fixedSecrets(id: string, serverId?: string): DeviceSecrets {
  const host = sshKeyPairFromSeed(h(`host:${id}`), `root@${id}`);
  const deploy = sshKeyPairFromSeed(h(`deploy:${id}`), `flux@${id}`);
  return {
    sshHostKey: { privateKey: host.privateKey, publicKey: host.publicKey },
    deployKey: { privateKey: deploy.privateKey, publicKey: deploy.publicKey },
    k3sToken: h(`k3s:${id}`).toString('hex'),
    // an agent: its own bootstrap token, derived as the keystore derives it; a server: its own agent-token
    agentToken: serverId ? agentJoinToken({ id, k3sToken: h(`k3s:${id}`).toString('hex') }).token : h(`agent:${id}`).toString('hex'),
    luksRecovery: 'TEST0-TEST0-TEST0-TEST0-TEST0-TEST0-TEST0-TEST0',
    // shape only: OpenPGP armour around 32 derived bytes (not a key); the renderers embed it, nothing decrypts with it
    sops: { fingerprint: h(`sops:${id}`).toString('hex').slice(0, 40).toUpperCase(), privateKeyArmored: armor(enums.armor.privateKey, h(`sops:${id}`)) },
  };
}

/** The secrets a device of this fleet gets: agents join with their own bootstrap token. */
export function fixedSecretsFor(d: ResolvedDevice): DeviceSecrets {
  return fixedSecrets(d.id, d.cluster.kind === 'multi-node-agent' ? d.cluster.serverId : undefined);
}

export async function exampleFleet(): Promise<Fleet> {
  return loadInventoryFile(EXAMPLE);
}

/** The example fleet with Flux pinned as an online HelmChart (no bundle file needed), for Flux-side tests. */
export function withFlux(fleet: Fleet): Fleet {
  const f = structuredClone(fleet);
  f.gitops.flux.install = { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' };
  return f;
}
