// Revoking a stolen, lost or retired device: mark it in the inventory (comments kept), rotate what
// it could still use, take it out of the GitOps repository, and leave a signed record that says
// what was done here and what the operator must do elsewhere, with the exact commands.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Fleet, ResolvedDevice } from '../inventory/fleet.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { setDeviceFields, setScalarAt } from './inventory-edit.ts';
import { isSopsDocument, sopsRecipients, sopsRotate, type SopsRecipient } from './sops.ts';
import { openKeyStore, type KeyStore } from '../keys/store.ts';
import type { RotationResult } from '../keys/types.ts';
import { loadGitopsPublicKeys } from '../pipeline/inputs/public-keys.ts';
import { KeysLayout } from '../keys/layout.ts';
import { sopsRules, renderSopsConfig } from '../render/gitops/index.ts';
import { devicePath } from '../render/flux/index.ts';

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
  gitops: { removed: string[]; reencrypted: string[]; sopsConfigUpdated: boolean } | null;
  operatorActions: OperatorAction[];
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

export function operatorActions(d: ResolvedDevice, fleet: Fleet, fp: Record<string, string>, opts: { gitopsDir?: string; keysDir: string; remaining: string[] }): OperatorAction[] {
  const repo = fleet.gitops.url;
  const actions: OperatorAction[] = [
    {
      what: `Delete the device's read-only deploy key on the Git host (${repo}); its fingerprint is ${fp.deployKey ?? 'unknown (never built)'}.`,
      commands: [
        `# GitHub: find the key whose title is "${d.id}" or whose fingerprint matches, then delete it`,
        `gh repo deploy-key list --repo <org/repo>`,
        `gh repo deploy-key delete <key-id> --repo <org/repo>`,
        `# GitLab: curl --request DELETE --header "PRIVATE-TOKEN: $TOKEN" "https://<gitlab>/api/v4/projects/<id>/deploy_keys/<key-id>"`,
      ],
    },
  ];
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
  if (opts.remaining.length)
    actions.push({
      what: `Rebuild and redeploy the remaining devices of ${d.siteId}: they carry the new site SOPS key in their sops-gpg Secret.`,
      commands: [`edgeforge build --only ${opts.remaining.join(',')}`, `edgeforge provision --only ${opts.remaining.join(',')}`],
    });
  if (d.cluster.kind === 'multi-node-agent')
    actions.push({ what: `Remove the node from its cluster on ${d.cluster.serverId}.`, commands: [`ssh ${d.cluster.serverId} 'sudo k3s kubectl delete node ${d.id}'`] });
  if (opts.gitopsDir)
    actions.push({ what: 'Commit and push the GitOps change so every device of the site reconciles it.', commands: [`git -C ${opts.gitopsDir} add -A && git -C ${opts.gitopsDir} commit -m "revoke ${d.id}" && git -C ${opts.gitopsDir} push`] });
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

export async function revokeDevice(o: RevokeOptions): Promise<{ record: RevocationRecord; recordFiles: string[] }> {
  const text = await fs.readFile(o.inventoryFile, 'utf8');
  const fleet = loadInventoryBytes(Buffer.from(text), o.inventoryFile);
  const d = fleet.devices.find((x) => x.id === o.id);
  if (!d) throw new Error(`device "${o.id}" is not in ${o.inventoryFile}`);
  if (d.status !== 'active') throw new Error(`device "${o.id}" is already ${d.status}; nothing to revoke`);

  // 1. the inventory, edited in place and checked before anything else changes
  const at = o.now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  let next = setDeviceFields(text, o.id, { status: o.reason, revoked: { reason: o.reason, at } });
  if (fleet.inventory.fleet.deviceCount !== undefined) next = setScalarAt(next, ['fleet', 'deviceCount'], fleet.inventory.fleet.deviceCount - 1);
  const after = loadInventoryBytes(Buffer.from(next), o.inventoryFile);

  // 2. keys: what the device had, and a new site key
  const layout = new KeysLayout(o.keysDir);
  const fingerprints: Record<string, string> = {};
  try {
    const pub = JSON.parse(await fs.readFile(layout.publicFile(layout.deviceDir(o.id)), 'utf8'));
    fingerprints.sshHostKey = pub.sshHostKey?.fingerprint;
    fingerprints.deployKey = pub.deployKey?.fingerprint;
    fingerprints.sops = pub.sops?.fingerprint;
  } catch {
    /* never built: nothing was issued */
  }
  let ks: KeyStore | undefined;
  let rotation: RotationResult | undefined;
  let oldSitePrivate: string | undefined;
  let oldSiteFpr: string | undefined;
  const siteKnown = await fs.access(layout.publicFile(layout.siteDir(d.siteId))).then(() => true, () => false);
  if (siteKnown) {
    ks = await openKeyStore({ dir: o.keysDir });
    const old = await ks.loadSiteIdentity(d.siteId);
    oldSitePrivate = old.sops.privateKeyArmored;
    oldSiteFpr = old.sops.fingerprint;
    rotation = await ks.rotateSite(d.siteId, { reason: `revoke ${o.id} (${o.reason})` });
  }

  try {
    // 3. the GitOps working tree: the device's path goes, the site's secrets move to the new recipients
    let gitops: RevocationRecord['gitops'] = null;
    if (o.gitopsDir) {
      gitops = { removed: [], reencrypted: [], sopsConfigUpdated: false };
      const devDir = path.join(o.gitopsDir, devicePath(d));
      if (await fs.access(devDir).then(() => true, () => false)) {
        await fs.rm(devDir, { recursive: true, force: true });
        gitops.removed.push(devicePath(d) + '/');
      }
      const keys = await loadGitopsPublicKeys(o.keysDir, after);
      // every SOPS file the device could read — its site's, its region's, the fleet-wide ones (site keys are
      // recipients there) — gets a new data key, encrypted to the recipients its own .sops.yaml rule now names
      const rules = sopsRules(after, keys);
      const armoredByFpr = new Map<string, string>();
      for (const k of [...keys.deviceSops.values(), ...keys.siteSops.values(), ...keys.admins]) armoredByFpr.set(k.fingerprint.toUpperCase(), k.publicArmored);
      const exposed = new Set([fingerprints.sops, oldSiteFpr].filter((x): x is string => Boolean(x)).map((x) => x.toUpperCase()));
      const all = (await listFiles(o.gitopsDir)).filter((f) => !path.relative(o.gitopsDir!, f).split(path.sep).includes('.git'));
      for (const file of all) {
        const body = await fs.readFile(file, 'utf8');
        if (!isSopsDocument(body)) continue;
        if (!sopsRecipients(body).some((fp) => exposed.has(fp.toUpperCase()))) continue;
        if (!oldSitePrivate) throw new Error(`${file} is SOPS-encrypted to ${d.id} but ${d.siteId} has no site key in ${o.keysDir}/ to open it`);
        const rel = path.relative(o.gitopsDir, file).split(path.sep).join('/');
        const rule = rules.find((r) => new RegExp(r.path_regex).test(rel));
        const to: SopsRecipient[] = (rule?.recipients ?? []).map((fp) => ({ fingerprint: fp, publicKeyArmored: armoredByFpr.get(fp)! })).filter((r) => r.publicKeyArmored);
        if (!to.length) throw new Error(`no recipients left for ${rel}`);
        const rotated = await sopsRotate(body, oldSitePrivate, to, o.now).catch((err: Error) => {
          throw new Error(`${rel}: cannot re-encrypt (${err.message}); it was readable by ${d.id}, so fix it by hand before pushing`);
        });
        await writeFileAtomic(file, rotated, { mode: (await fs.stat(file)).mode & 0o777 });
        gitops.reencrypted.push(rel);
      }
      const sopsFile = path.join(o.gitopsDir, '.sops.yaml');
      await writeFileAtomic(sopsFile, renderSopsConfig(after, keys));
      gitops.sopsConfigUpdated = true;
    }

    // 4. the inventory, now that the rest is done
    await writeFileAtomic(o.inventoryFile, next, { mode: (await fs.stat(o.inventoryFile)).mode & 0o777 });

    // 5. the signed record
    const remaining = after.active.filter((x) => x.siteId === d.siteId).map((x) => x.id);
    const record: RevocationRecord = {
      format: 'edgeforge-revocation/1',
      fleet: fleet.name,
      device: { id: d.id, serial: d.serial, mac: d.mac, region: d.region, site: d.site, profile: d.profileName, role: d.role },
      reason: o.reason,
      at,
      fingerprints,
      rotated: rotation?.changed ?? [],
      gitops,
      operatorActions: operatorActions(d, fleet, fingerprints, { gitopsDir: o.gitopsDir, keysDir: o.keysDir, remaining }),
    };
    const base = path.join(o.keysDir, 'revocations', `${d.id}-${at.replace(/[:]/g, '')}`);
    const json = JSON.stringify(record, null, 2) + '\n';
    await writeFileAtomic(`${base}.json`, json);
    await writeFileAtomic(`${base}.txt`, recordText(record));
    const files = [`${base}.json`, `${base}.txt`];
    ks ??= await openKeyStore({ dir: o.keysDir });
    try {
      await writeFileAtomic(`${base}.json.asc`, await ks.signDetached(Buffer.from(json)));
      files.push(`${base}.json.asc`);
    } catch (err) {
      throw new Error(`revocation recorded but not signed (${(err as Error).message}); run \`edgeforge keys init\` and sign ${base}.json`);
    }
    return { record, recordFiles: files };
  } finally {
    await ks?.close();
  }
}
