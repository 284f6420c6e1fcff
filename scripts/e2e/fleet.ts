// The test's copy of inventory/example.yaml: the same fleet, with what a qemu guest on a laptop needs changed
// (and nothing else): the one uefi-gpt device gets DHCP on qemu's user network, SSH from that network, a tang
// server the guest can reach (qemu guestfwd to the host), no TPM (qemu has none here), the test's SSH key for
// its users, and the K3s airgap bundle with the stand-in binary (real sha256 pins). With `canary`, a K3s rollout
// is in progress and the device's site is in the canary ring: its release's stand-in bundle is k3s.install.canary
// (the device installs its ring's version from its directory on the K3s partition).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isSeq, parseDocument, type YAMLMap } from 'yaml';
import type { StandinBundle } from './k3s-standin.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXAMPLE = path.join(REPO, 'inventory/example.yaml');

/** the example fleet's UEFI board, the one device whose profile is uefi-gpt */
export const DEVICE = 'changwon2-server';
export const SITE = ['kr-south', 'changwon-plant-2'] as const;
/** addresses inside qemu's user network (10.0.2.0/24; the guest is 10.0.2.15, the host 10.0.2.2) */
export const TANG_GUEST = { ip: '10.0.2.100', port: 80 };
export const GIT_GUEST = { ip: '10.0.2.101', port: 22 };
/** the status broker as the guest sees it (a forward, not the host's 10.0.2.2: boot 1 runs with restrict=on) */
export const STATUS_GUEST_IP = '10.0.2.102';
export const QEMU_NET = '10.0.2.0/24';
export const GUEST_IP = '10.0.2.15';
export const QEMU_GW = '10.0.2.2';
export const QEMU_DNS = '10.0.2.3';

export interface TestFleetInput {
  dir: string;
  standin: StandinBundle;
  /** a rollout in progress: the canary release's stand-in bundle (the device's site becomes a canary site) */
  canary?: StandinBundle;
  flux: { file: string; sha256: string };
  tangThumbprint: string;
  tangAdvertisementFile?: string;
  sshPublicKey: string;
  gitKnownHostsKey?: string;
}

export interface TestFleet {
  inventory: string;
  device: string;
  mac: string;
  users: string[];
}

export async function makeTestFleet(t: TestFleetInput): Promise<TestFleet> {
  const doc = parseDocument(await fs.readFile(EXAMPLE, 'utf8'));
  const bundleRel = path.relative(t.dir, t.standin.dir) || '.';
  const canary = t.canary ? { canary: { bundle: path.relative(t.dir, t.canary.dir), sha256: t.canary.sha256 } } : {};
  doc.setIn(['k3s', 'install'], doc.createNode({ mode: 'airgap', bundle: bundleRel, sha256: t.standin.sha256, ...canary }));
  // the stable ring runs the release the stand-in bundle stands in for; a rollout moves the canary ring on
  doc.setIn(['k3s', 'version'], t.standin.version);
  if (t.canary) doc.setIn(['k3s', 'canaryVersion'], t.canary.version);
  doc.setIn(['defaults', 'users'], doc.createNode([{ name: 'ops', sshAuthorizedKeys: [t.sshPublicKey.trim()] }]));
  if (t.gitKnownHostsKey) {
    doc.setIn(['gitops', 'url'], `ssh://git@${GIT_GUEST.ip}/factory/fleet.git`);
    doc.setIn(['gitops', 'knownHosts'], `${GIT_GUEST.ip} ${t.gitKnownHostsKey.trim().split(/\s+/).slice(0, 2).join(' ')}`);
  }
  doc.setIn(['gitops', 'flux', 'install'], doc.createNode({ mode: 'bundle', file: path.relative(t.dir, t.flux.file), sha256: t.flux.sha256 }));
  doc.setIn(['profiles', 'ipc-4g', 'tpm2'], false);
  const site = ['regions', SITE[0], 'sites', SITE[1]];
  if (t.canary) doc.setIn([...site, 'canary'], true);
  // static, as the site has it, but inside qemu's user network (slirp forwards to the guest at 10.0.2.15)
  doc.setIn([...site, 'network'], doc.createNode({ mode: 'static', gateway: QEMU_GW, dns: [QEMU_DNS] }));
  doc.setIn([...site, 'managementSubnet'], QEMU_NET);
  const tang: Record<string, string> = { url: `http://${TANG_GUEST.ip}`, thumbprint: t.tangThumbprint };
  if (t.tangAdvertisementFile) tang.advertisement = path.relative(t.dir, t.tangAdvertisementFile);
  doc.setIn([...site, 'encryption'], doc.createNode({ mode: 'tang', threshold: 1, tang: [tang] }));
  const devices = doc.getIn([...site, 'devices']);
  if (!isSeq(devices)) throw new Error(`${EXAMPLE}: ${site.join('.')}.devices is not a list`);
  let mac = '';
  let n = 21;
  for (const d of devices.items) {
    if (!isMap(d)) continue;
    const m = d as YAMLMap;
    const isDevice = m.get('id') === DEVICE;
    m.set('network', doc.createNode({ address: isDevice ? `${GUEST_IP}/24` : `10.0.2.${n++}/24` }));
    if (isDevice) mac = String(m.get('mac'));
  }
  if (!mac) throw new Error(`${EXAMPLE}: device ${DEVICE} not found`);
  const inventory = path.join(t.dir, 'inventory.yaml');
  await fs.writeFile(inventory, `# edgeforge e2e: a test copy of inventory/example.yaml (see scripts/e2e/fleet.ts for what changed)\n${doc.toString()}`);
  return { inventory, device: DEVICE, mac, users: ['ops'] };
}
