// The OCI transport in the ARM64 boot test. The booted device stays on Git (the other checks read
// its deploy key); beside it the same fleet on `gitops.transport: oci` is built for the same device with the same
// keys, and its registry side is set up on the host exactly as an operator does it: `registry config`, Debian's
// docker-registry, `registry token-server`, and `publish` of the committed GitOps tree. In boot 1, from the
// device: a root shell derives its pull password from the deploy key in the Flux secret on its encrypted volume
// (as the OCI bootstrap renders it: keys/registry-pull.ts) and pulls its site's artifact through the registry on
// the host the way source-controller does (the 401 naming the issuer, a token with its own credential, the
// manifest, the layer; the fleet CA pinned), and another site's repository must stay closed to it. Flux itself
// does not run here (the K3s stand-in), as in the Git check.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { parseDocument } from 'yaml';
import { freePort, makeTestCerts } from '../testkit/mosquitto.ts';
import { startRegistry, type RunningRegistry } from '../testkit/registry.ts';
import { REPO, SITE } from './fleet.ts';
import { expect, notReached, type Checks } from './checks.ts';
import { sshRun, type SshTarget } from './ssh.ts';
import { fluxSecretOnDevice } from './day2.ts';

$.verbose = false;

export const OCI_CHECKS = {
  pull: "oci: the device pulls its site's artifact from the registry on the host with its own credential (token from edgeforge's issuer, CA pinned)",
  scope: "oci: the device's credential does not open another site's artifact",
} as const;

/** the registry and its token issuer as the guest sees them (qemu forwards to the host's loopback) */
export const REGISTRY_GUEST = { ip: '10.0.2.103', port: 5000 };
export const ISSUER_GUEST = { ip: '10.0.2.104', port: 5001 };
const OTHER_SITE = 'kr-south/ulsan-plant-1';

type Cli = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface E2eOci {
  dir: string;
  inventory: string;
  registryPort: number;
  issuerPort: number;
  ca: string;
  registry?: RunningRegistry;
  issuer?: ChildProcess;
  issuerLog: string;
  /** what publish recorded for the device's site */
  artifact?: { repository: string; digest: string; layer: string };
  error?: string;
}

/** Before the build: certificates (SANs: the guest's registry and issuer addresses), ports, the OCI copy of the inventory. */
export async function prepareOci(work: string, inventory: string): Promise<E2eOci> {
  const dir = path.join(work, 'oci');
  await fs.rm(dir, { recursive: true, force: true });
  const certs = makeTestCerts(path.join(dir, 'certs'), [`IP:${REGISTRY_GUEST.ip}`, `IP:${ISSUER_GUEST.ip}`, 'IP:127.0.0.1']);
  const [registryPort, issuerPort] = [await freePort(), await freePort()];
  await fs.copyFile(certs.ca, path.join(path.dirname(inventory), 'registry-ca.pem'));
  // the host's view of the registry (publish runs here); the guest reaches the same registry through its forward
  // through the YAML document, not the text: earlier fixture steps re-serialize the inventory (long lines fold)
  const doc = parseDocument(await fs.readFile(inventory, 'utf8'));
  doc.setIn(['gitops', 'transport'], 'oci');
  doc.setIn(['gitops', 'oci'], doc.createNode({ registry: `127.0.0.1:${registryPort}`, repository: 'fleet', caFile: 'registry-ca.pem' }));
  const oci = path.join(path.dirname(inventory), 'inventory-oci.yaml');
  await fs.writeFile(oci, doc.toString());
  return { dir, inventory: oci, registryPort, issuerPort, ca: await fs.readFile(certs.ca, 'utf8'), issuerLog: '' };
}

/** After the Git build: the OCI build of the device, registry config, the registry and its issuer, publish. */
export async function startOci(o: E2eOci, a: { keys: string; device: string; edgeforge: Cli }): Promise<void> {
  const certs = path.join(o.dir, 'certs');
  const out = path.join(o.dir, 'out');
  const reg = path.join(o.dir, 'registry');
  const common = ['-i', o.inventory, '--keys', a.keys];
  const run = async (what: string, args: string[]) => {
    const r = await a.edgeforge(args);
    if (r.code !== 0) throw new Error(`edgeforge ${what}: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return r;
  };
  await run('build (oci)', ['build', ...common, '--only', a.device, '-o', out, '--example-admin']);
  await run('registry config', [
    'registry',
    'config',
    ...common,
    '-o',
    out,
    '--to',
    reg,
    '--listen',
    `127.0.0.1:${o.registryPort}`,
    '--token-port',
    String(o.issuerPort),
    '--storage',
    path.join(o.dir, 'storage'),
    '--tls-cert',
    path.join(certs, 'broker.pem'),
    '--tls-key',
    path.join(certs, 'broker.key'),
  ]);
  o.issuer = spawn(
    process.execPath,
    [
      path.join(REPO, 'scripts/bin/edgeforge.mjs'),
      'registry',
      'token-server',
      '--dir',
      path.join(reg, 'central'),
      '--listen',
      `127.0.0.1:${o.issuerPort}`,
      '--tls-cert',
      path.join(certs, 'broker.pem'),
      '--tls-key',
      path.join(certs, 'broker.key'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  o.issuer.stderr!.on('data', (c) => (o.issuerLog += c));
  for (let i = 0; i < 300 && !o.issuerLog.includes('token issuer for'); i++) await new Promise((r) => setTimeout(r, 100));
  if (!o.issuerLog.includes('token issuer for')) throw new Error(`registry token-server did not start: ${o.issuerLog.slice(-300)}`);
  const config = path.join(reg, 'central/config.yml');
  o.registry = await startRegistry(config, o.registryPort);
  // the fleet repository: `edgeforge gitops` of the OCI fleet, committed, published
  const tree = path.join(o.dir, 'fleet-repo');
  // as an operator does before the first `gitops`: every device's keys (the build above made the one device's)
  await run('keys init (oci)', ['keys', 'init', ...common]);
  await run('gitops (oci)', ['gitops', ...common, '--to', tree]);
  const g = ['-c', 'user.name=edgeforge e2e', '-c', 'user.email=e2e@edgeforge.invalid', '-C', tree];
  await $`git init -q -b main ${tree}`;
  await $`git ${g} add -A`;
  await $`git ${g} commit -q -m ${'edgeforge gitops (e2e, oci)'}`;
  await run('publish', ['publish', ...common, '-o', out, '--gitops', tree, '--password-file', path.join(reg, 'central/publisher.password')]);
  const m = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8')) as { oci?: { artifacts: { site: string; repository: string; digest: string; layer: { digest: string } }[] } };
  const art = m.oci?.artifacts.find((x) => x.site === SITE.join('/'));
  if (!art) throw new Error(`publish recorded no artifact for ${SITE.join('/')}`);
  o.artifact = { repository: art.repository, digest: art.digest, layer: art.layer.digest };
  // the guest reaches the issuer at its forward: the registry names that realm in its 401s from now on
  await fs.writeFile(config, (await fs.readFile(config, 'utf8')).replace(`https://127.0.0.1:${o.issuerPort}/token`, `https://${ISSUER_GUEST.ip}:${ISSUER_GUEST.port}/token`));
  await o.registry.stop();
  o.registry = await startRegistry(config, o.registryPort);
}

/** Run as root in the guest: its pull password from its own deploy key, then the registry's token flow with curl. */
export function pullScript(o: E2eOci, device: string): string {
  const reg = `https://${REGISTRY_GUEST.ip}:${REGISTRY_GUEST.port}`;
  const other = `fleet/${OTHER_SITE}`;
  return `set -eu
d=$(mktemp -d /run/edgeforge-e2e-oci.XXXXXX); trap 'rm -rf "$d"' EXIT
cat >"$d/ca.pem" <<'EDGEFORGE_CA'
${o.ca.trim()}
EDGEFORGE_CA
${fluxSecretOnDevice(
  '$d',
  `        key = base64.b64decode(doc['data']['identity'])
        pw = base64.urlsafe_b64encode(hmac.new(key, b'edgeforge registry pull v1', hashlib.sha256).digest()).decode().rstrip('=')
        p = os.path.join(d, 'pw'); open(p, 'w').write(pw); os.chmod(p, 0o600)`,
)}
[ -f "$d/pw" ] || { echo NO_SECRET flux-system; exit 0; }
c() { curl -sS --max-time 60 --cacert "$d/ca.pem" "$@"; }
token() { c -u "${device}:$(cat "$d/pw")" "$realm?service=$service&scope=repository:$1:pull" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",""))'; }
hdr=$(c -o /dev/null -D - "${reg}/v2/${o.artifact?.repository}/manifests/latest" | tr -d '\\r' | grep -i '^www-authenticate:' || true)
echo "CHALLENGE $hdr"
realm=$(printf '%s' "$hdr" | sed -n 's/.*realm="\\([^"]*\\)".*/\\1/p'); service=$(printf '%s' "$hdr" | sed -n 's/.*service="\\([^"]*\\)".*/\\1/p')
t=$(token ${o.artifact?.repository})
c -H "Authorization: Bearer $t" -H 'Accept: application/vnd.oci.image.manifest.v1+json' -D "$d/h" -o "$d/m.json" "${reg}/v2/${o.artifact?.repository}/manifests/latest"
echo "MANIFEST $(tr -d '\\r' <"$d/h" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$d/m.json")
c -L -H "Authorization: Bearer $t" -o "$d/layer.tgz" "${reg}/v2/${o.artifact?.repository}/blobs/$layer"
echo "LAYER sha256:$(sha256sum "$d/layer.tgz" | cut -d' ' -f1) $(tar -tzf "$d/layer.tgz" | wc -l) files"
tar -tzf "$d/layer.tgz" | grep -x 'clusters/${SITE.join('/')}/${device}/flux-system/gotk-sync.yaml' | sed 's/^/HAS /'
tar -tzf "$d/layer.tgz" | grep -c '^clusters/kr-south/ulsan-plant-1/' | sed 's/^/OTHER_SITE_FILES /' || true
t2=$(token ${other})
echo "OTHER $(c -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t2" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${reg}/v2/${other}/manifests/latest")"
`;
}

/** The named checks, run while the device is up after its first boot (SSH works). */
export async function ociChecks(checks: Checks, o: E2eOci | undefined, a: { target: SshTarget; running: boolean; device: string; live: Record<string, string> }): Promise<void> {
  let out = '';
  await checks.run(OCI_CHECKS.pull, async () => {
    if (!o?.registry || !o.artifact) notReached(`no registry on the host${o?.error ? ` (${o.error})` : ''}`);
    if (!a.running) notReached('the guest is not running');
    const r = await sshRun(a.target, 'sudo -n sh -s', 180, pullScript(o, a.device));
    out = `${r.stdout}\n[stderr] ${r.stderr}`;
    a.live.oci = out;
    if (/NO_SECRET/.test(r.stdout)) notReached(`the Flux secret is not on the device: ${r.stdout.trim().slice(0, 200)}`);
    expect(/CHALLENGE .*Bearer realm="https:\/\/10\.0\.2\.104/i.test(r.stdout), `no token challenge from the registry: ${out.trim().slice(0, 400)}`);
    const manifest = /MANIFEST (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
    expect(manifest === o.artifact.digest, `the device got manifest ${manifest ?? 'none'}, publish recorded ${o.artifact.digest}: ${out.trim().slice(0, 400)}`);
    const layer = /LAYER (sha256:[0-9a-f]{64}) (\d+) files/.exec(r.stdout);
    expect(layer?.[1] === o.artifact.layer, `the layer it downloaded hashes to ${layer?.[1] ?? 'nothing'}, the artifact's is ${o.artifact.layer}`);
    expect(/HAS clusters\//.test(r.stdout), `its own clusters/ directory is not in the artifact`);
    expect(/OTHER_SITE_FILES 0/.test(r.stdout), "the artifact carries another site's files");
    expect(
      new RegExp(`200 ${a.device} repository:${o.artifact.repository}:pull`).test(o.issuerLog),
      `the issuer did not log a token for ${a.device}: ${o.issuerLog.split('\n').slice(-5).join(' | ')}`,
    );
    return `manifest ${manifest!.slice(0, 19)}… = publish's; layer ${layer![2]} files, its sha256 = the artifact's; token issued to ${a.device} for ${o.artifact.repository}`;
  });
  await checks.run(OCI_CHECKS.scope, async () => {
    if (!out) notReached('the pull did not run');
    const code = /OTHER (\d{3})/.exec(out)?.[1];
    expect(code === '401' || code === '403', `another site's manifest answered ${code ?? 'nothing'} to the device's token`);
    return `${OTHER_SITE}: HTTP ${code} with the device's token`;
  });
}

export async function closeOci(o: E2eOci | undefined): Promise<void> {
  if (!o) return;
  o.issuer?.kill('SIGTERM');
  if (o.registry) {
    await fs.writeFile(path.join(o.dir, 'registry.log'), o.registry.log()).catch(() => {});
    await o.registry.stop();
  }
  await fs.writeFile(path.join(o.dir, 'issuer.log'), o.issuerLog).catch(() => {});
}
