// The one shape of every device stage renderDevice runs (Flux bootstrap, fleet status, certificate renewal,
// OS updates, disk encryption): the device, its secrets and the bundle so far in; the bundle files it adds,
// the first-boot fragment it defines and the clear files it withholds (sealed into one of its own) out.
// A stage also declares what it reads besides the inventory and the device's secrets, as digests: the build
// hashes those declarations into every device's inputs, so a stage cannot be left out of the skip decision.
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { RenderedFile } from './files.ts';

/** The private material a device's rendering needs, as plain strings (the keys stage supplies them). */
export interface DeviceSecrets {
  /** the device's pinned SSH host key, OpenSSH formats */
  sshHostKey: { privateKey: string; publicKey: string };
  /** servers: the K3s token of the cluster they serve */
  k3sToken: string;
  /** multi-node server: its agent-token (no agent has it); multi-node agent: its own bootstrap token "<id>.<secret>" (keys/join-token.ts) */
  agentToken?: string;
  /** Flux's Git deploy key (used by the flux-bootstrap stage) */
  deployKey?: { privateKey: string; publicKey: string };
  /** the device's SOPS key (used by the flux-bootstrap stage) */
  sops?: { fingerprint: string; privateKeyArmored: string };
  /** its site's SOPS key (secrets shared by the site's devices) */
  siteSops?: { fingerprint: string; privateKeyArmored: string };
  /** LUKS recovery passphrase (for the disk-encryption stage) */
  luksRecovery?: string;
  /** the device's broker password for fleet status (for the status stage; not a one-time secret) */
  statusPassword?: string;
}

export interface DeviceStageInput {
  fleet: Fleet;
  secrets: DeviceSecrets;
  /** the bundle files rendered before this stage (the encryption stage seals the one-time secrets among them) */
  bundle: readonly RenderedFile[];
}

export interface DeviceStageOutput {
  /** files under bundle/ */
  files: RenderedFile[];
  /** shell the first-boot program gets (function definitions) */
  fragment?: string;
  /** paths of earlier bundle files left out of the clear bundle and of user-data (the stage sealed them) */
  withhold?: string[];
}

export interface DeviceStage {
  /** what the stage reads besides the inventory and the secrets (name -> sha256, null when absent) */
  inputs: Record<string, string | null>;
  render(d: ResolvedDevice, input: DeviceStageInput): DeviceStageOutput;
}

/**
 * A one-time secret of the bundle: bundle/secrets/* and the Flux bootstrap's secret manifest (Git deploy key,
 * device and site SOPS keys), which unpacks as bundle/flux/NAME on the device (encryption/sh/unseal.sh).
 */
export function isOneTimeSecret(f: Pick<RenderedFile, 'path' | 'kind' | 'secret'>): boolean {
  return f.path.startsWith('bundle/secrets/') || (f.kind === 'flux-bootstrap' && f.secret);
}
