// `edgeforge gitops --to DIR`: the scaffold merged into the working tree (pipeline/gitops/update.ts), then each
// multi-node server's agent join tokens (join-tokens.ts), which need the agents' private identities and so an
// admin key that unlocks keys/. `gitops --check` runs the same writer on a copy of the tree.
import path from 'node:path';
import type { Fleet } from '../inventory/fleet.ts';
import { openKeyStore } from '../keys/store.ts';
import { loadGitopsPublicKeys } from '../pipeline/inputs/public-keys.ts';
import { updateGitopsRepo, type GitopsUpdate } from '../pipeline/gitops/update.ts';
import type { WriteTreeResult } from '../pipeline/gitops/tree.ts';
import { syncJoinTokens, type JoinTokenSync } from './join-tokens.ts';
import { joinWindowDays } from '../keys/join-token.ts';
import type { Expiry } from '../conformance/expiry.ts';

export interface GitopsWrite extends GitopsUpdate {
  /** when new join tokens are issued (they expire k3s.joinWindow later): the clock, not SOURCE_DATE_EPOCH */
  now: Date;
}

export interface GitopsWriteResult extends WriteTreeResult {
  joinTokens?: JoinTokenSync;
  /** what the written tree holds that expires (agents' join tokens), for the time warnings */
  expiries: Expiry[];
}

export async function writeGitops(fleet: Fleet, o: GitopsWrite): Promise<GitopsWriteResult> {
  const res: GitopsWriteResult = { ...(await updateGitopsRepo(fleet, o)), expiries: [] };
  if (o.dryRun || !fleet.active.some((d) => d.cluster.kind === 'multi-node-server')) return res;
  const keysDir = path.resolve(o.cwd, o.keysDir);
  const keys = await loadGitopsPublicKeys(keysDir, fleet);
  const ks = await openKeyStore({ dir: keysDir, workers: 0 }).catch(() => undefined);
  try {
    const unlocked =
      ks &&
      (await ks.unlock().then(
        () => true,
        () => false,
      ))
        ? ks
        : undefined;
    res.joinTokens = await syncJoinTokens(o.dir, fleet, keys, unlocked, Math.floor(o.now.getTime() / 1000));
  } finally {
    await ks?.close();
  }
  const margin = joinWindowDays(fleet) / 2; // rewritten with less than half the window left (join-tokens.ts)
  res.expiries = res.joinTokens.tokens.map((t) => ({ what: `join token of agent ${t.agent}`, where: t.path, expires: t.expires, marginDays: margin }));
  if (res.joinTokens.pending.length) res.warnings.push(`agent join tokens not written (needs an admin key: EDGEFORGE_ADMIN_KEY): ${res.joinTokens.pending.join(', ')}`);
  return res;
}
