// Writes each multi-node server's join-tokens/ directory in a GitOps working tree (render/gitops/join-tokens.ts says
// what is in it). A token file is kept while it names the agent's current token, is encrypted to the server's
// current key and has at least half its join window left; otherwise it is rewritten, which needs the agents'
// private identities (an admin key). Token files of agents that are no longer active are deleted: Flux then
// prunes their Secrets. Run by `gitops --to` and `revoke`.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import type { GitopsPublicKeys } from '../render/gitops/sops.ts';
import { bootstrapTokenSecret, joinTokensKustomization, joinTokensPath, revokedAgentYaml, revokedFile, tokenFile } from '../render/gitops/join-tokens.ts';
import { agentJoinToken, joinTokenExpiry } from '../keys/join-token.ts';
import { kubectlImage } from '../render/day2/upgrade-images.ts';
import type { KeyStore } from '../keys/store.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { sopsEncrypt } from './sops.ts';

export interface JoinTokenSync {
  written: string[];
  deleted: string[];
  unchanged: string[];
  /** token files that must be (re)written but could not be: no admin key */
  pending: string[];
  /** every token file the tree holds now, with its expiry (RFC 3339) */
  tokens: { path: string; agent: string; expires: string }[];
}

interface TokenHead {
  name?: string;
  expires?: string;
  recipients: string[];
}

async function readHead(file: string): Promise<TokenHead | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const doc = parse(text) as { metadata?: { name?: string; annotations?: Record<string, string> }; sops?: { pgp?: { fp: string }[] } };
    return { name: doc.metadata?.name, expires: doc.metadata?.annotations?.['edgeforge.dev/expires'], recipients: (doc.sops?.pgp ?? []).map((p) => p.fp.toUpperCase()) };
  } catch {
    return { recipients: [] };
  }
}

/** a revoked agent: its revocation Job written, its token file gone; returns the file the kustomization lists */
async function syncRevokedAgent(id: string, dir: string, rel: string, fleet: Fleet, r: JoinTokenSync): Promise<string> {
  const f = revokedFile(id);
  const text = revokedAgentYaml(id, kubectlImage(fleet).pull);
  const cur = await fs.readFile(path.join(dir, f), 'utf8').catch(() => undefined);
  if (cur !== text) {
    await writeFileAtomic(path.join(dir, f), text, { mode: 0o644 });
    r.written.push(`${rel}/${f}`);
  } else r.unchanged.push(`${rel}/${f}`);
  const tok = path.join(dir, tokenFile(id));
  const hasToken = await fs.access(tok).then(
    () => true,
    () => false,
  );
  if (hasToken) {
    await fs.rm(tok);
    r.deleted.push(`${rel}/${tokenFile(id)}`);
  }
  return f;
}

/**
 * @param ks  an unlocked keystore, or undefined: then nothing is encrypted and what needed it is `pending`
 * @param epoch  issue time of new tokens (SOURCE_DATE_EPOCH or now), seconds
 */
export async function syncJoinTokens(root: string, fleet: Fleet, keys: GitopsPublicKeys, ks: Pick<KeyStore, 'loadDeviceIdentity'> | undefined, epoch: number): Promise<JoinTokenSync> {
  const r: JoinTokenSync = { written: [], deleted: [], unchanged: [], pending: [], tokens: [] };
  const servers = fleet.active.filter((d): d is ResolvedDevice & { cluster: { kind: 'multi-node-server'; agents: string[] } } => d.cluster.kind === 'multi-node-server');
  const window = fleet.k3s.joinWindow ?? '30d';
  const fresh = joinTokenExpiry(epoch, window);
  const halfLeft = new Date((epoch + (Number(window.slice(0, -1)) * 86400) / 2) * 1000).toISOString();
  for (const server of servers) {
    const rel = joinTokensPath(server);
    const dir = path.join(root, rel);
    const serverKey = keys.deviceSops.get(server.id);
    if (!serverKey) throw new Error(`no SOPS public key for ${server.id}: run edgeforge keys init / build first`);
    // active agents, and the site's agents that were revoked (the resolver gives those no cluster role)
    const agents = fleet.devices.filter((d) => d.role === 'agent' && d.siteId === server.siteId);
    const listed: string[] = [];
    for (const a of agents) {
      if (a.status !== 'active') {
        listed.push(await syncRevokedAgent(a.id, dir, rel, fleet, r));
        continue;
      }
      const f = tokenFile(a.id);
      const head = await readHead(path.join(dir, f));
      const identity = ks ? await ks.loadDeviceIdentity(a.id) : undefined;
      const tok = identity ? agentJoinToken(identity) : undefined;
      const current =
        head &&
        head.recipients.length === 1 &&
        head.recipients[0] === serverKey.fingerprint.toUpperCase() &&
        head.expires !== undefined &&
        head.expires >= halfLeft.replace(/\.\d{3}Z$/, 'Z') &&
        (!tok || head.name === `bootstrap-token-${tok.id}`);
      if (current) {
        r.unchanged.push(`${rel}/${f}`);
        r.tokens.push({ path: `${rel}/${f}`, agent: a.id, expires: head.expires! });
        listed.push(f);
      } else if (tok) {
        const text = await sopsEncrypt(bootstrapTokenSecret(a.id, server.id, tok, fresh), [{ fingerprint: serverKey.fingerprint, publicKeyArmored: serverKey.publicArmored }], {
          now: new Date(epoch * 1000),
        });
        await writeFileAtomic(path.join(dir, f), text, { mode: 0o644 });
        r.written.push(`${rel}/${f}`);
        r.tokens.push({ path: `${rel}/${f}`, agent: a.id, expires: fresh });
        listed.push(f);
      } else {
        r.pending.push(`${rel}/${f}`);
        if (head) listed.push(f);
        if (head?.expires) r.tokens.push({ path: `${rel}/${f}`, agent: a.id, expires: head.expires });
      }
    }
    // token files of agents this inventory no longer has
    const known = new Set(agents.map((a) => tokenFile(a.id)));
    for (const n of await fs.readdir(dir).catch(() => [] as string[])) {
      if (n.endsWith('.token.yaml') && !known.has(n)) {
        await fs.rm(path.join(dir, n));
        r.deleted.push(`${rel}/${n}`);
      }
    }
    const kfile = path.join(dir, 'kustomization.yaml');
    const ktext = joinTokensKustomization(server, listed);
    if ((await fs.readFile(kfile, 'utf8').catch(() => undefined)) !== ktext) {
      await writeFileAtomic(kfile, ktext, { mode: 0o644 });
      r.written.push(`${rel}/kustomization.yaml`);
    }
  }
  return r;
}
