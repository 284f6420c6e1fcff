// Revoking a stolen, lost or retired device: mark it in the inventory (comments kept), rotate what
// it could still use, take it out of the GitOps repository, and leave a signed record that says
// what was done here and what the operator must do elsewhere, with the exact commands.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { setDeviceFields, setScalarAt } from './inventory-edit.ts';
import { openKeyStore, type KeyStore } from '../keys/store.ts';
import type { RotationResult } from '../keys/types.ts';
import { applySiteRotation, planSiteRotation, type SiteRotationPlan } from './rekey.ts';
import { syncJoinTokens } from './join-tokens.ts';
import { loadGitopsPublicKeys } from '../pipeline/inputs/public-keys.ts';
import { KeysLayout } from '../keys/layout.ts';
import { devicePath } from '../render/flux/index.ts';
import { usesOci } from '../render/oci/format.ts';

export type RevokeReason = 'stolen' | 'lost' | 'retired';

export interface OperatorAction {
  what: string;
  commands: string[];
}

export interface RevocationRecord {
  format: 'edgeforge-revocation/1';
  fleet: string;
  device: { id: string; serial: string; mac: string; region: string; site: string; profile: string; role: string };
  reason: RevokeReason;
  at: string;
  fingerprints: Record<string, string>;
  rotated: RotationResult['changed'];
  gitops: { removed: string[]; reencrypted: string[]; siteKeyDelivered: string[]; sopsConfigUpdated: boolean; joinTokens: { written: string[]; deleted: string[] } } | null;
  operatorActions: OperatorAction[];
}

export function operatorActions(d: ResolvedDevice, fleet: Fleet, fp: Record<string, string>, opts: { gitopsDir?: string; keysDir: string; remaining: string[] }): OperatorAction[] {
  const actions: OperatorAction[] = [usesOci(fleet) ? refusePullCredential(d, fleet) : deleteDeployKey(d, fleet.gitops.url, fp)];
  if (d.encryption.mode.includes('tang')) {
    actions.push({
      what: `If ${d.id} could have reached a tang server of ${d.siteId} after it was taken (${d.encryption.tang.map((t) => t.url).join(', ')}), rotate that tang server's keys and re-bind the site's remaining devices.`,
      commands: [
        `ssh <tang-host> 'sudo /usr/libexec/tangd-keygen /var/db/tang && sudo /usr/libexec/tangd-rotate-keys -d /var/db/tang'`,
        `# then update the thumbprint in the inventory and re-bind: edgeforge provision --only ${opts.remaining.join(',') || '<site devices>'}`,
      ],
    });
  }
  actions.push({
    what: `Destroy the escrowed LUKS recovery passphrase once nobody needs to open ${d.id}'s disk (a stolen disk is never coming back), including copies in the keys repository's history or secrets store.`,
    commands: [`shred -u ${path.join(opts.keysDir, 'devices', d.id)}/private-g*.enc.asc`],
  });
  if (opts.remaining.length && !opts.gitopsDir)
    actions.push({
      what: `Deliver the new site key to the remaining devices of ${d.siteId} through Git (this run had no --gitops): it rotates the key again and writes each device's sops-keys/ file.`,
      commands: [`edgeforge keys rotate --site ${d.siteId} --gitops <fleet-repo> --reason "revoke ${d.id}"`],
    });
  if (d.cluster.kind === 'multi-node-agent') {
    const last = d.cluster.kind === 'multi-node-agent' && opts.remaining.length === 1;
    if (last)
      actions.push({
        what: `${d.id} was the last agent of ${d.siteId}: ${d.cluster.serverId} is now a single-node cluster, its Flux Kustomization join-tokens goes (and prunes every token), so revoked-${d.id}.yaml is not applied there. Delete the node by hand.`,
        commands: [`ssh ${d.cluster.serverId} 'sudo k3s kubectl delete node ${d.id} --ignore-not-found && sudo k3s kubectl -n kube-system delete secret ${d.id}.node-password.k3s --ignore-not-found'`],
      });
    if (!opts.gitopsDir && !last)
      actions.push({
        what: `Shut ${d.id} out of its cluster on ${d.cluster.serverId} (this run had no --gitops, so Git does not do it).`,
        commands: [`edgeforge gitops --to <fleet-repo>   # deletes its join token, writes revoked-${d.id}.yaml`, `ssh ${d.cluster.serverId} 'sudo k3s kubectl delete node ${d.id}'`],
      });
    actions.push({
      what: `${d.id} still holds client certificates signed by ${d.cluster.serverId}'s cluster CA (kubelet, kube-proxy, k3s-controller; K3s issues them for a year). With its Node deleted and re-registration refused they read only cluster-wide lists (services, endpoints, nodes, namespaces, network policies) and only from where the server's port 6443 is reachable. To make them worthless now, rotate the cluster CA on the server (every node of the site then restarts with new certificates):`,
      commands: [
        `ssh ${d.cluster.serverId} 'sudo k3s certificate rotate-ca --path=<new CA dir from k3s certificate generate> && sudo systemctl restart k3s'`,
        '# then restart k3s-agent on every remaining agent of the site (docs/keys.md, "What a stolen agent keeps")',
      ],
    });
  }
  if (opts.gitopsDir)
    actions.push({
      what: 'Commit and push the GitOps change so every device of the site reconciles it.',
      commands: [`git -C ${opts.gitopsDir} add -A && git -C ${opts.gitopsDir} commit -m "revoke ${d.id}" && git -C ${opts.gitopsDir} push`],
    });
  return actions;
}

export function recordText(r: RevocationRecord): string {
  const lines = [
    `REVOCATION of ${r.device.id} (${r.reason}) — fleet ${r.fleet}, ${r.at}`,
    `device: serial ${r.device.serial}, MAC ${r.device.mac}, site ${r.device.region}/${r.device.site}, profile ${r.device.profile}, role ${r.device.role}`,
    '',
    'Its fingerprints (now worthless):',
    ...Object.entries(r.fingerprints).map(([k, v]) => `  ${k}: ${v}`),
    '',
    'Rotated here:',
    ...(r.rotated.length ? r.rotated.map((c) => `  ${c.what}: ${c.old} -> ${c.new}`) : ['  (nothing: the site had no keys yet)']),
  ];
  if (r.gitops) {
    lines.push('', 'GitOps repository:', ...r.gitops.removed.map((p) => `  removed ${p}`), ...r.gitops.reencrypted.map((p) => `  re-encrypted ${p}`));
    for (const p of r.gitops.joinTokens.deleted) lines.push(`  deleted ${p} (its join token: the server's Flux prunes the Secret)`);
    for (const p of r.gitops.joinTokens.written.filter((x) => x.includes('/revoked-'))) lines.push(`  wrote ${p} (no re-registration; a Job deletes its Node and node-password Secret)`);
    for (const p of r.gitops.siteKeyDelivered.filter((x) => !x.endsWith('kustomization.yaml'))) lines.push(`  new site key for ${p.split('/')[3]}: ${p} (encrypted to that device only)`);
    if (r.gitops.sopsConfigUpdated) lines.push('  .sops.yaml updated (the device and the old site key are no longer recipients)');
  }
  lines.push('', 'You must still do, elsewhere:');
  r.operatorActions.forEach((a, i) => lines.push(`${i + 1}. ${a.what}`, ...a.commands.map((c) => `     ${c}`)));
  return lines.join('\n') + '\n';
}

export interface RevokeOptions {
  inventoryFile: string;
  keysDir: string;
  gitopsDir?: string;
  id: string;
  reason: RevokeReason;
  now: Date;
}

/** Why a device cannot be revoked as asked; the message says what to do. Nothing has been changed. */
export class RevokeRefused extends Error {}

/** The checks that need only the inventory (unknown id, not active, a server its agents still need). */
export function revokeProblem(fleet: Fleet, id: string, file: string): string | undefined {
  const d = fleet.devices.find((x) => x.id === id);
  if (!d) return `device "${id}" is not in ${file}`;
  if (d.status !== 'active') return `device "${id}" is already ${d.status}${d.replacedBy ? ` (replaced by ${d.replacedBy})` : ''}; nothing to revoke`;
  if (d.cluster.kind === 'multi-node-server') {
    const agents = d.cluster.agents.filter((a) => fleet.devices.find((x) => x.id === a)?.status === 'active');
    if (agents.length)
      return `device "${id}" is the only server of ${d.siteId}, and its agents ${agents.join(', ')} join through it; revoke the agents first (or make another device the server), then revoke ${id}`;
  }
  return undefined;
}

export async function revokeDevice(o: RevokeOptions): Promise<{ record: RevocationRecord; recordFiles: string[] }> {
  const text = await fs.readFile(o.inventoryFile, 'utf8');
  const fleet = loadInventoryBytes(Buffer.from(text), o.inventoryFile);
  const problem = revokeProblem(fleet, o.id, o.inventoryFile);
  if (problem) throw new RevokeRefused(problem);
  const d = fleet.devices.find((x) => x.id === o.id)!;

  // --- everything that can fail, before anything changes -------------------------------------------------
  const at = o.now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  let next = setDeviceFields(text, o.id, { status: o.reason, revoked: { reason: o.reason, at } });
  if (fleet.inventory.fleet.deviceCount !== undefined) next = setScalarAt(next, ['fleet', 'deviceCount'], fleet.inventory.fleet.deviceCount - 1);
  const after = loadInventoryBytes(Buffer.from(next), o.inventoryFile);
  const fingerprints = await issuedFingerprints(o, d);
  const ks = await openKeyStore({ dir: o.keysDir });
  try {
    let plan: SiteRotationPlan;
    try {
      await ks.unlock();
      const stolen = await ks.loadDeviceIdentity(o.id);
      plan = await planSiteRotation(ks, after, d.siteId, o.gitopsDir, { exposed: [stolen.sops.fingerprint], skip: [devicePath(d) + '/'] });
    } catch (err) {
      throw new RevokeRefused((err as Error).message);
    }

    // --- now change: keys, GitOps tree, inventory, record --------------------------------------------------
    const rotation = await ks.rotateSite(d.siteId, { reason: `revoke ${o.id} (${o.reason})` });
    const newSiteKey = (await ks.loadSiteIdentity(d.siteId)).sops.privateKeyArmored;
    const gitops = o.gitopsDir ? await removeFromGitops(ks, o, o.gitopsDir, d, after, { plan, newSiteKey }) : null;
    await writeFileAtomic(o.inventoryFile, next, { mode: (await fs.stat(o.inventoryFile)).mode & 0o777 });

    const remaining = after.active.filter((x) => x.siteId === d.siteId).map((x) => x.id);
    const record: RevocationRecord = {
      format: 'edgeforge-revocation/1',
      fleet: fleet.name,
      device: { id: d.id, serial: d.serial, mac: d.mac, region: d.region, site: d.site, profile: d.profileName, role: d.role },
      reason: o.reason,
      at,
      fingerprints,
      rotated: rotation.changed,
      gitops,
      operatorActions: operatorActions(d, fleet, fingerprints, { gitopsDir: o.gitopsDir, keysDir: o.keysDir, remaining }),
    };
    return { record, recordFiles: await writeRecord(ks, o.keysDir, record) };
  } finally {
    await ks.close();
  }
}

/** The fingerprints of what was issued to the device; refused when its keys or its site's are not in the keys directory. */
async function issuedFingerprints(o: RevokeOptions, d: ResolvedDevice): Promise<Record<string, string>> {
  const layout = new KeysLayout(o.keysDir);
  const pubFile = layout.publicFile(layout.deviceDir(o.id));
  const pub = await fs.readFile(pubFile, 'utf8').then(
    (t) => JSON.parse(t),
    () => undefined,
  );
  if (!pub)
    throw new RevokeRefused(
      `device "${o.id}" has no keys in ${o.keysDir}/ (no ${path.relative(process.cwd(), pubFile) || pubFile}): wrong --keys directory? If it was never built, nothing was issued to it: set its status in the inventory by hand`,
    );
  const fingerprints: Record<string, string> = { sshHostKey: pub.sshHostKey?.fingerprint, deployKey: pub.deployKey?.fingerprint, sops: pub.sops?.fingerprint };
  if (
    !(await fs.access(layout.publicFile(layout.siteDir(d.siteId))).then(
      () => true,
      () => false,
    ))
  )
    throw new RevokeRefused(`site ${d.siteId} has no SOPS key in ${o.keysDir}/ although ${o.id} has keys: the keys directory is incomplete; restore it before revoking`);
  return fingerprints;
}

/** Its folder out of the GitOps tree, the site's secrets re-encrypted to the new site key, an agent's join token gone. */
async function removeFromGitops(
  ks: KeyStore,
  o: RevokeOptions,
  gitopsDir: string,
  d: ResolvedDevice,
  after: Fleet,
  rotation: { plan: SiteRotationPlan; newSiteKey: string },
): Promise<NonNullable<RevocationRecord['gitops']>> {
  const removed: string[] = [];
  const devDir = path.join(gitopsDir, devicePath(d));
  if (
    await fs.access(devDir).then(
      () => true,
      () => false,
    )
  ) {
    await fs.rm(devDir, { recursive: true, force: true });
    removed.push(devicePath(d) + '/');
  }
  const keys = await loadGitopsPublicKeys(o.keysDir, after);
  const gitops = {
    removed,
    ...(await applySiteRotation(rotation.plan, rotation.newSiteKey, gitopsDir, after, keys, o.now)),
    sopsConfigUpdated: true,
    joinTokens: { written: [] as string[], deleted: [] as string[] },
  };
  if (d.cluster.kind === 'multi-node-agent') {
    // its token Secret goes (Flux prunes it), and revoked-<id>.yaml keeps its node credentials out
    const j = await syncJoinTokens(gitopsDir, after, keys, ks, Math.floor(o.now.getTime() / 1000));
    gitops.joinTokens = { written: j.written, deleted: j.deleted };
  }
  return gitops;
}

/** KEYS/revocations/<id>-<time>.json, .txt and the JSON's detached signature by the build key. */
async function writeRecord(ks: KeyStore, keysDir: string, record: RevocationRecord): Promise<string[]> {
  const base = path.join(keysDir, 'revocations', `${record.device.id}-${record.at.replace(/[:]/g, '')}`);
  const json = JSON.stringify(record, null, 2) + '\n';
  await writeFileAtomic(`${base}.json`, json);
  await writeFileAtomic(`${base}.txt`, recordText(record));
  const files = [`${base}.json`, `${base}.txt`];
  try {
    await writeFileAtomic(`${base}.json.asc`, await ks.signDetached(Buffer.from(json)));
    files.push(`${base}.json.asc`);
  } catch (err) {
    throw new Error(`revocation recorded but not signed (${(err as Error).message}); run \`edgeforge keys init\` and sign ${base}.json`);
  }
  return files;
}

/** An OCI device's counterpart of the deploy key: its registry credential, refused once the issuers' access files are rewritten. */
function refusePullCredential(d: ResolvedDevice, fleet: Fleet): OperatorAction {
  return {
    what: `Refuse ${d.id}'s registry pull credential: write the registries' configuration again (the device is no longer active, so its user is left out) where the token issuers read it; they take it without a restart, and its last token lapses within its lifetime (5 minutes by default).`,
    commands: [`edgeforge registry config --to <registry config dir> -i ${fleet.file}`, `# copy each site's part to its cache host if you write it elsewhere`],
  };
}

/** A Git device's deploy key (an OCI device never fetches from the Git host: its key is registered nowhere). */
function deleteDeployKey(d: ResolvedDevice, repo: string, fp: Record<string, string>): OperatorAction {
  return {
    what: `Delete the device's read-only deploy key on the Git host (${repo}); its fingerprint is ${fp.deployKey ?? 'unknown (never built)'}.`,
    commands: [
      `# GitHub: find the key whose title is "${d.id}" or whose fingerprint matches, then delete it`,
      `gh repo deploy-key list --repo <org/repo>`,
      `gh repo deploy-key delete <key-id> --repo <org/repo>`,
      `# GitLab: curl --request DELETE --header "PRIVATE-TOKEN: $TOKEN" "https://<gitlab>/api/v4/projects/<id>/deploy_keys/<key-id>"`,
    ],
  };
}
