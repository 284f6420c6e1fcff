// The "airgap" scenario of the boot test, on boot 1: qemu's user network runs with restrict=on, so
// the guest reaches nothing but the explicit forwards (the tang and Git stand-ins, and the status broker the
// inventory names); the Flux controllers' image archives are real docker-archive tars made here and pinned in
// the test inventory (gitops.flux.install.images) by their real sha256. The checks: from the device nothing
// else answers (a listener on the host that is not forwarded, a public address), and the stand-in K3s found,
// when it started, an archive for every controller image the build's bootstrap manifests name — with the
// sha256 the build pinned — and those manifests in its auto-deploy directory.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parseDocument } from 'yaml';
import { makeImageArchive } from '../testkit/image-archive.ts';
import { STANDIN_LOG } from './k3s-standin.ts';
import { expect, notReached, type Checks } from './checks.ts';
import { sshRun, type SshTarget } from './ssh.ts';
import { QEMU_GW } from './fleet.ts';
import { K3S_MANIFESTS_DIR } from '../device/layout.ts';

export const AIRGAP_CHECKS = {
  network: 'airgap: the device reaches only the tang and Git stand-ins (and the status broker), nothing else',
  images: 'airgap: K3s found an archive for every Flux controller image the build pinned, and the bootstrap manifests, at start',
} as const;

const K3S_MANIFESTS = K3S_MANIFESTS_DIR;
const K3S_IMAGES = '/var/lib/rancher/k3s/agent/images';

/**
 * Makes an archive for each controller image of the stand-in Flux install.yaml that the fleet runs (source-
 * and kustomize-controller, edgeforge's defaults) and pins them in the test inventory.
 */
export async function pinFluxImageArchives(
  inventory: string,
  fluxInstallYaml: string,
  controllers = ['source-controller', 'kustomize-controller'],
): Promise<{ image: string; file: string; sha256: string }[]> {
  const dir = path.dirname(inventory);
  const pins: { image: string; file: string; sha256: string }[] = [];
  for (const d of parseAllDocuments(await fs.readFile(fluxInstallYaml, 'utf8'))) {
    const o = d.toJS() as { kind?: string; metadata?: { name?: string }; spec?: { template?: { spec?: { containers?: { image?: string }[] } } } } | null;
    const name = o?.metadata?.name ?? '';
    if (o?.kind !== 'Deployment' || !controllers.includes(name)) continue;
    for (const c of o.spec?.template?.spec?.containers ?? []) {
      if (!c.image) continue;
      const a = await makeImageArchive(path.join(dir, 'bundles/flux/images', `${name}.tar`), c.image);
      pins.push({ image: c.image, file: path.relative(dir, a.file), sha256: a.sha256 });
    }
  }
  if (pins.length !== controllers.length) throw new Error(`the Flux stand-in names ${pins.length} image(s) for ${controllers.join(', ')}`);
  const doc = parseDocument(await fs.readFile(inventory, 'utf8'));
  doc.setIn(['gitops', 'flux', 'install', 'images'], doc.createNode(pins));
  await fs.writeFile(inventory, doc.toString());
  return pins;
}

/** a python3 probe on the device: TCP connect to each host:port, "host:port open|closed (reason)" per line */
function probeScript(targets: string[]): string {
  return `python3 - <<'PY'
import socket
for t in ${JSON.stringify(targets)}:
    h, p = t.rsplit(':', 1)
    s = socket.socket(); s.settimeout(8)
    try:
        s.connect((h, int(p))); print(t, 'open')
    except Exception as e:
        print(t, 'closed', type(e).__name__)
    finally:
        s.close()
PY`;
}

export interface AirgapContext {
  target: SshTarget;
  running: boolean;
  /** forwards the guest may use, as it addresses them, to probe (one connection each) */
  allowed: { name: string; ip: string; port: number }[];
  /** host listeners that exist but are not forwarded (e.g. the Git stand-in's own port on 127.0.0.1) */
  hostPorts: number[];
  /** OUT/devices/<id>: the build's bundle (firstboot.sh's pins, the Flux bootstrap manifests) */
  deviceDir: string;
  /** what pinFluxImageArchives wrote into the test inventory */
  pins: { image: string; file: string }[];
}

/** The two named checks, while the device is up after its first boot (SSH works). */
export async function airgapChecks(checks: Checks, o: AirgapContext): Promise<void> {
  await checks.run(AIRGAP_CHECKS.network, async () => {
    if (!o.running) notReached('the guest is not running');
    const denied = [...o.hostPorts.map((p) => `${QEMU_GW}:${p}`), '1.1.1.1:443', '192.0.2.1:80'];
    const allowed = o.allowed.map((a) => `${a.ip}:${a.port}`);
    const r = await sshRun(o.target, probeScript([...allowed, ...denied]), 120);
    expect(r.code === 0, `the probe failed: ${r.stderr.trim().slice(0, 300)}`);
    const state = new Map(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => [l.split(' ')[0], l]),
    );
    const blocked = allowed.filter((a) => !/ open$/.test(state.get(a) ?? ''));
    const leaked = denied.filter((d) => / open$/.test(state.get(d) ?? ''));
    expect(blocked.length === 0, `the stand-ins the device needs are not reachable: ${blocked.map((b) => state.get(b) ?? b).join('; ')}`);
    expect(leaked.length === 0, `the device reaches what it must not: ${leaked.join(', ')}`);
    return `open: ${o.allowed.map((a) => `${a.name} ${a.ip}:${a.port}`).join(', ')}; refused: ${denied.join(', ')}`;
  });
  await checks.run(AIRGAP_CHECKS.images, async () => {
    if (!o.running) notReached('the guest is not running');
    const prog = await fs.readFile(path.join(o.deviceDir, 'bundle/firstboot.sh'), 'utf8');
    const pinned = new Map(
      (/^EF_IMAGE_ARCHIVES='([^']*)'/m.exec(prog)?.[1] ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] as const),
    );
    expect(pinned.size > 0, 'the build pinned no image archives (EF_IMAGE_ARCHIVES is empty in bundle/firstboot.sh)');
    // the controller images the bootstrap manifests ask K3s to run, and the archive the inventory pins for each
    const components = await fs.readFile(path.join(o.deviceDir, 'bundle/flux/edgeforge-flux-components.yaml'), 'utf8').catch(() => '');
    const byImage = new Map(o.pins.map((p) => [p.image, path.basename(p.file)]));
    const images = new Set<string>();
    for (const d of parseAllDocuments(components)) {
      const x = d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { image?: string }[] } } } } | null;
      if (x?.kind === 'Deployment') for (const c of x.spec?.template?.spec?.containers ?? []) if (c.image) images.add(c.image);
    }
    expect(images.size > 0, "the build's edgeforge-flux-components.yaml names no controller image");
    const log = (await sshRun(o.target, `sudo -n cat ${STANDIN_LOG}`, 60)).stdout;
    if (!/running server/.test(log)) notReached(`the stand-in K3s never started as a server (${STANDIN_LOG}: ${log.trim().split('\n').slice(-2).join(' | ') || 'empty'})`);
    // what the stand-in saw at its LAST start (it records each start)
    const last = log.slice(log.lastIndexOf(' k3s server'));
    const found = new Map([...last.matchAll(new RegExp(`^images ${K3S_IMAGES}/(\\S+) sha256 ([0-9a-f]{64})$`, 'gm'))].map((m) => [m[1], m[2]]));
    const manifests = new Set([...last.matchAll(new RegExp(`^manifest ${K3S_MANIFESTS}/(\\S+)$`, 'gm'))].map((m) => m[1]));
    const wrong: string[] = [];
    for (const image of images) {
      const name = byImage.get(image);
      if (!name || !pinned.has(name)) wrong.push(`${image}: no archive pinned by the build`);
      else if (!found.has(name)) wrong.push(`${image}: ${name} not in ${K3S_IMAGES} when K3s started`);
      else if (found.get(name) !== pinned.get(name)) wrong.push(`${image}: ${name} has sha256 ${found.get(name)}, the build pinned ${pinned.get(name)}`);
    }
    const bootstrap = (await fs.readdir(path.join(o.deviceDir, 'bundle/flux'))).filter((f) => f.endsWith('.yaml'));
    const absent = bootstrap.filter((f) => !manifests.has(f));
    expect(wrong.length === 0, wrong.join('; '));
    expect(absent.length === 0, `bootstrap manifests K3s did not find in ${K3S_MANIFESTS} at start: ${absent.join(', ')} (found: ${[...manifests].join(', ') || 'none'})`);
    return `${images.size} controller image(s) ${[...images].join(', ')} → ${[...pinned.keys()].join(', ')} found with the pinned sha256; manifests: ${[...manifests].join(', ')}`;
  });
}
