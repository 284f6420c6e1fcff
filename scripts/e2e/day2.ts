// Day 2 in the ARM64 boot test. Before boot 1: `edgeforge gitops` writes the fleet's GitOps tree
// and it is pushed to the Git stand-in, so the repository the device pulls from is edgeforge's own. In boot 1:
//   - the device's Git path holds the upgrade controller and its ring's Plans: the commit the device's
//     upload-pack advertises, cloned on the host with the device's own deploy key and pinned host key (Flux
//     does not run here); its clusters/<r>/<s>/<id>/flux-system names the Kustomizations system-upgrade and
//     upgrades, and their paths render with kubectl kustomize;
//   - the certificate-renewal timer is enabled on the booted device, and one run of its check succeeds.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { $ } from 'zx';
import { loadInventoryFile } from '../inventory/load.ts';
import { ringOf, ringVersion } from '../render/day2/rings.ts';
import { upgradesPath } from '../render/day2/plans.ts';
import { devicePath, UPGRADE_CONTROLLER_KUSTOMIZATION, UPGRADES_KUSTOMIZATION } from '../render/flux/sync.ts';
import { CERT_RENEWAL, K3S_MANIFESTS_DIR } from '../device/layout.ts';
import { FLUX_SECRET_FILE } from '../render/flux/bootstrap.ts';
import { tool } from '../testkit/tools.ts';
import { GIT_GUEST } from './fleet.ts';
import { expect, notReached, type Checks } from './checks.ts';
import { sshRun, type SshTarget } from './ssh.ts';
import type { GitServer } from './git.ts';

$.verbose = false;

export const DAY2_CHECKS = {
  gitPath: "day 2: the device's Git path holds the upgrade controller and its ring's Plans (kubectl kustomize of what its deploy key fetches)",
  renewal: 'day 2: the certificate-renewal timer is enabled on the booted device and its check runs',
} as const;

type Cli = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/**
 * After the build: every device's public keys (`keys init` keeps the existing ones), `edgeforge gitops`
 * into a working tree, committed and pushed to the stand-in; git.head moves to that commit.
 */
export async function publishGitopsTree(o: { git: GitServer; work: string; inventory: string; keys: string; edgeforge: Cli }): Promise<string> {
  const tree = path.join(o.work, 'gitops-tree');
  await fs.rm(tree, { recursive: true, force: true });
  const k = await o.edgeforge(['keys', 'init', '-i', o.inventory, '--keys', o.keys]);
  if (k.code !== 0) throw new Error(`edgeforge keys init: exit ${k.code}: ${k.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const r = await o.edgeforge(['gitops', '--to', tree, '-i', o.inventory, '--keys', o.keys]);
  if (r.code !== 0) throw new Error(`edgeforge gitops: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const g = ['-c', 'user.name=edgeforge e2e', '-c', 'user.email=e2e@edgeforge.invalid', '-C', tree];
  await $`git init -q -b main ${tree}`;
  await $`git ${g} add -A`;
  await $`git ${g} commit -q -m ${'edgeforge gitops (e2e)'}`;
  // the bare repository belongs to the stand-in's git user: git refuses to push into another user's repository
  await $`chown -R root: ${o.git.repo}`;
  await $`git -C ${tree} push -q -f ${o.git.repo} main`;
  await $`chown -R git: ${o.git.repo}`;
  o.git.head = (await $`git -C ${tree} rev-parse main`).stdout.trim();
  return o.git.head;
}

/** Where K3s applies the Flux secret from (on the encrypted volume): the device's deploy key as the device holds it. */
export const FLUX_SECRETS_ON_DEVICE = `${K3S_MANIFESTS_DIR}/${FLUX_SECRET_FILE}`;

/**
 * Root shell in the guest: python3 that finds the `flux-system` Secret in the Flux secrets file K3s applies and
 * runs `body` (Python, indented 8) with `doc` bound to it and `d` the directory given as $1; prints NO_SECRET
 * when the file is not there. Keys stay on the device.
 */
export function fluxSecretOnDevice(dirVar: string, body: string): string {
  return `python3 - "${dirVar}" <<'PY'
import base64, hashlib, hmac, os, sys, yaml
d = sys.argv[1]
try:
    docs = list(yaml.safe_load_all(open('${FLUX_SECRETS_ON_DEVICE}')))
except OSError as e:
    print('NO_SECRET', e); sys.exit(0)
for doc in docs:
    if doc and doc.get('kind') == 'Secret' and doc['metadata']['name'] == 'flux-system':
${body}
PY`;
}

/**
 * The device's deploy key and known_hosts (0600 files in dir), read from the booted device: the build seals the
 * Flux secret to the site's tang, so the build output holds no clear copy.
 */
async function deviceGitCredentials(target: SshTarget, dir: string): Promise<{ id: string; kh: string }> {
  const r = await sshRun(target, `sudo -n cat ${FLUX_SECRETS_ON_DEVICE}`, 60);
  for (const d of parseAllDocuments(r.stdout)) {
    const o = d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
    if (o?.kind === 'Secret' && o.metadata?.name === 'flux-system' && o.data?.identity && o.data.known_hosts) {
      const id = path.join(dir, 'id');
      const kh = path.join(dir, 'kh');
      await fs.writeFile(id, Buffer.from(o.data.identity, 'base64'), { mode: 0o600 });
      await fs.writeFile(kh, Buffer.from(o.data.known_hosts, 'base64'), { mode: 0o600 });
      return { id, kh };
    }
  }
  throw new Error(`no flux-system Secret with identity and known_hosts in ${FLUX_SECRETS_ON_DEVICE} on the device (${r.stderr.trim().slice(0, 200)})`);
}

export async function day2Checks(checks: Checks, o: { target: SshTarget; running: boolean; git?: GitServer; published?: string; work: string; inventory: string; device: string }): Promise<void> {
  await checks.run(DAY2_CHECKS.gitPath, async () => {
    if (!o.git || !o.published) notReached('the GitOps tree was not published to the Git stand-in');
    if (!o.running) notReached('the guest is not running (the deploy key is read from it)');
    const fleet = await loadInventoryFile(o.inventory);
    const d = fleet.active.find((x) => x.id === o.device)!;
    const site = fleet.sites.find((s) => s.id === d.siteId)!;
    const dir = path.join(o.work, 'day2-clone');
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const cred = await deviceGitCredentials(o.target, dir);
    const ssh = `ssh -F /dev/null -i ${cred.id} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${cred.kh} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o HostKeyAlias=${GIT_GUEST.ip} -p ${o.git.port}`;
    const clone = path.join(dir, 'repo');
    await $({ env: { ...process.env, GIT_SSH_COMMAND: ssh } })`git clone -q ssh://git@127.0.0.1:${o.git.port}/factory/fleet.git ${clone}`;
    const head = (await $`git -C ${clone} rev-parse HEAD`).stdout.trim();
    expect(head === o.git.head, `the clone is at ${head}, the stand-in advertises ${o.git.head}`);
    const render = async (rel: string) =>
      parseAllDocuments((await $`${tool('kubectl')} kustomize ${path.join(clone, rel)}`).stdout)
        .map((x) => x.toJS() as Record<string, any>)
        .filter(Boolean);
    // the device's own sync objects name the controller's and its site's Plans' Kustomizations; each renders
    const sync = await render(`${devicePath(d)}/flux-system`);
    const ks = (name: string) => sync.find((x) => x.kind === 'Kustomization' && x.metadata?.name === name)?.spec?.path as string | undefined;
    const ctlPath = ks(UPGRADE_CONTROLLER_KUSTOMIZATION);
    const plansPath = ks(UPGRADES_KUSTOMIZATION);
    expect(ctlPath !== undefined && plansPath !== undefined, `clusters/…/${d.id}/flux-system has no Kustomizations ${UPGRADE_CONTROLLER_KUSTOMIZATION} and ${UPGRADES_KUSTOMIZATION}`);
    const ctl = await render(ctlPath!);
    const has = (kind: string, name: string) => ctl.some((x) => x.kind === kind && x.metadata?.name === name);
    expect(
      has('Deployment', 'system-upgrade-controller') && !ctl.some((x) => x.kind === 'CustomResourceDefinition'),
      `${ctlPath} renders no upgrade controller, or a CRD the controller registers itself (kinds: ${[...new Set(ctl.map((x) => x.kind))].join(', ')})`,
    );
    const objs = await render(plansPath!);
    const plans = objs.filter((x) => x.kind === 'Plan');
    const want = ringVersion(fleet, ringOf(site));
    expect(
      plans.length > 0 && plans.every((p) => p.spec.version === want && p.metadata.labels['edgeforge.io/ring'] === ringOf(site)),
      `Plans ${plans.map((p) => `${p.metadata.name}@${p.spec.version}`).join(', ') || '(none)'}; want the ${ringOf(site)} ring's ${want}`,
    );
    expect(
      plans.every((p) => p.spec.window?.startTime === site.window.start && p.spec.window?.timeZone === site.window.timeZone),
      `the Plans' window is not the site's (${site.window.start} ${site.window.timeZone})`,
    );
    return `commit ${head.slice(0, 12)} fetched with ${d.id}'s deploy key: controller + ${plans.map((p) => p.metadata.name).join(', ')} at ${want} (${ringOf(site)} ring, ${upgradesPath(site)}), window ${site.window.start}-${site.window.end} ${site.window.timeZone}`;
  });
  await checks.run(DAY2_CHECKS.renewal, async () => {
    if (!o.running) notReached('the guest is not running');
    const unit = path.basename(CERT_RENEWAL.timer);
    const r = await sshRun(o.target, `systemctl is-enabled ${unit}; systemctl is-active ${unit}; systemctl show -p NextElapseUSecRealtime --value ${unit}`, 60);
    const [enabled, active, next] = r.stdout.trim().split('\n');
    expect(enabled === 'enabled' && active === 'active', `${unit}: is-enabled ${enabled ?? '?'}, is-active ${active ?? '?'} ${r.stderr.trim()}`);
    const run = await sshRun(o.target, `sudo -n systemctl start ${path.basename(CERT_RENEWAL.service)}; echo "rc=$?"; sudo -n cat ${CERT_RENEWAL.state}; sudo -n tail -n 3 ${CERT_RENEWAL.log}`, 180);
    expect(/rc=0/.test(run.stdout) && /checked=\d+/.test(run.stdout), `one run of the check: ${(run.stdout + run.stderr).trim().slice(0, 400)}`);
    const checked = /checked=(\d+)/.exec(run.stdout)![1];
    const restarted = /restarted=(\w+)/.exec(run.stdout)?.[1];
    return `${unit} enabled and active, next ${next || '?'}; a run checked ${checked} leaf certificate(s), restarted: ${restarted}`;
  });
}
