// `npm run test:e2e`: proof that a device boots from what edgeforge builds. Not part of `npm test` (it needs
// root for the base image, qemu-system-aarch64, and 5-20 minutes).
//
//   1. base     the cached Debian arm64 uefi-gpt base image (scripts/e2e/base-image.ts)
//   2. smoke    the base alone boots with the test's own NoCloud seed (a failure here is the base's, not ours)
//   3. build    the example fleet (a test copy: qemu network, tang on the host, K3s/Flux stand-ins in an
//               airgap bundle) built against the base; one device's image materialized
//   4. boot 1   with tang reachable: cloud-init runs the device's seed, the first-boot program runs; the test
//               logs in over SSH trusting only the pinned host key, then powers the guest off cleanly
//   5. disk     the powered-off image read from the host (debugfs, mtools, cryptsetup luksDump)
//   6. boot 2   without tang (the stolen device): the data volume must stay locked
//
// Every check is reported by name as PASS, FAIL (reached and wrong) or NOT REACHED (an earlier stage or a
// missing piece stopped it). Exit 0 only when every check passed. Stage timings are printed at the end.
//
// Environment: EDGEFORGE_E2E_WORK (work dir, default a fresh temp dir: kept when a check failed or with
// EDGEFORGE_E2E_KEEP=1, removed after a passing run), EDGEFORGE_E2E_CACHE (base
// cache), EDGEFORGE_E2E_SKIP_SMOKE=1, EDGEFORGE_E2E_BOOT_TIMEOUT (seconds to cloud-init's end, default 1200).
import { promises as fs, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import { ensureBaseImage, type BaseImageInfo } from '../../scripts/e2e/base-image.ts';
import { Checks, expect, notReached } from '../../scripts/e2e/checks.ts';
import { bootFiles, Ext4Reader, FatReader, luksDump, partitions, type Part } from '../../scripts/e2e/disk-read.ts';
import { makeTestFleet, DEVICE, GIT_GUEST, REPO, STATUS_GUEST_IP, TANG_GUEST } from '../../scripts/e2e/fleet.ts';
import { AIRGAP_CHECKS, airgapChecks, pinFluxImageArchives } from '../../scripts/e2e/airgap.ts';
import { INSTALL_LOG, makeFluxStandin, makeK3sStandin, STANDIN_LOG } from '../../scripts/e2e/k3s-standin.ts';
import { k3sAirgapReleaseDir, STATE_DIR } from '../../scripts/device/layout.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { deviceK3sVersion, ringOf } from '../../scripts/render/day2/rings.ts';
import { NotReached, Vm } from '../../scripts/e2e/qemu.ts';
import { smokeBase, SMOKE_CHECKS } from '../../scripts/e2e/smoke.ts';
import { freePort, sshRun, sshWait, type SshTarget } from '../../scripts/e2e/ssh.ts';
import { log, stage, stageSummary } from '../../scripts/e2e/stage.ts';
import { fetchAdv, startTang, type TangServer } from '../../scripts/e2e/tang.ts';
import { STATUS_CHECKS, closeStatus, prepareStatus, startStatusBroker, statusChecks, type E2eStatus } from '../../scripts/e2e/status.ts';
import { startGit, type GitServer } from '../../scripts/e2e/git.ts';
import { FIRSTBOOT_CHECKS, TEST_BACKOFF, bootLateThenCut, permanentFailureBoot, resumedChecks, waitFirstbootDone, type FirstbootE2e } from '../../scripts/e2e/firstboot.ts';
import { DAY2_CHECKS, day2Checks, fluxSecretOnDevice, publishGitopsTree } from '../../scripts/e2e/day2.ts';
import { ISSUER_GUEST, OCI_CHECKS, REGISTRY_GUEST, closeOci, ociChecks, prepareOci, startOci, type E2eOci } from '../../scripts/e2e/oci.ts';
import { OS_CHECKS, OS_GUEST, RELEASES, makeOsReleases, osUpdateScenario, setOsInventory, shareOsKey, type OsReleases } from '../../scripts/e2e/os-update.ts';
import { startOsSource, type OsSource } from '../../scripts/e2e/os-source.ts';
import { ADMIN_PASSWORD_FILE } from '../../scripts/e2e/status.ts';
import { EXAMPLE } from '../../scripts/e2e/fleet.ts';
import { parseAllDocuments } from 'yaml';

$.verbose = false;

const EDGEFORGE = path.join(REPO, 'scripts/bin/edgeforge.mjs');
const BOOT_TIMEOUT = Number(process.env.EDGEFORGE_E2E_BOOT_TIMEOUT ?? 1200) * 1000;
const EPOCH = '1767225600';
// a K3s rollout is in progress in the test fleet and the device's site is a canary site (scripts/e2e/fleet.ts):
// the device installs this release from k3s.install.canary's files, in their directory on the K3s partition
const CANARY_VERSION = 'v1.36.5+k3s1';
const CANARY_BUNDLE = 'bundles/k3s-canary';
const CANARY_DIR = k3sAirgapReleaseDir(CANARY_VERSION);
/** the device's card, materialized, is written to a card this much larger (the data volume takes the rest) */
const CARD_EXTRA = 3 * 2 ** 30;

const C = {
  build: 'build: fleet built against the base image (disk delta)',
  materialize: 'image: device image materialized',
  seedPart: 'image: CIDATA seed partition in the gap (uefi-gpt profile)',
  airgapPart: 'image: K3s airgap partition (edgeforge-k3s, FAT) from the fleet base',
  boot1: 'boot 1: kernel boots the device image',
  cloudInit: 'boot 1: cloud-init ran the device\'s seed',
  firstboot: 'boot 1: first-boot program completed every step',
  ssh: 'boot 1: SSH login with the pinned host key only',
  poweroff1: 'boot 1: clean power-off',
  hostname: 'device: hostname is the device id',
  users: 'device: users and authorized keys are the inventory\'s, passwords locked',
  hostKeys: 'device: SSH host key is the pinned one (and the only one)',
  luks: 'data volume: LUKS2 volume with a tang (clevis) binding exists',
  unlocked: 'data volume: open on boot 1 (tang reachable)',
  k3sConfig: 'k3s: config.yaml where K3s reads it',
  k3sAirgap: 'k3s: installed through the airgap path and started (stand-in binary)',
  k3sRing: "k3s (day 2): a canary-ring device installed its ring's release (k3s.canaryVersion) from its directory on the K3s partition",
  flux: 'flux: bootstrap manifests in K3s\'s auto-deploy directory',
  git: 'flux: from the device, its deploy key and pinned known_hosts reach the Git server over SSH',
  seedErased: 'secrets: gone from the seed partition',
  cacheErased: 'secrets: gone from cloud-init\'s caches and the bundle',
  reboot: 'boot 2 (tang): device comes up again, SSH with the pinned key',
  bootUnlock: 'boot 2 (tang): data volume unlocked at boot through tang, bind mounts on it',
  poweroffReboot: 'boot 2 (tang): clean power-off',
  boot2: 'boot 3 (no tang): device comes up, SSH with the pinned key',
  locked: 'boot 3 (no tang): data volume stays locked, K3s waits (degraded mode)',
  lateUnlock: 'boot 3 (tang back): the volume unlocks by itself, the bind mounts follow, K3s starts',
  poweroff2: 'boot 3 (no tang): clean power-off',
};

interface Built {
  out: string;
  dir: string; // OUT/devices/<id>
  image: string;
  manifest: { devices: { id: string; artifacts: { kind: string; path: string; secret: boolean }[] }[] };
}

async function edgeforge(args: string[], logFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await $({ env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH }, cwd: REPO })`node ${EDGEFORGE} ${args}`.nothrow();
  await fs.appendFile(logFile, `$ edgeforge ${args.join(' ')}\n${r.stdout}\n${r.stderr}\nexit ${r.exitCode}\n\n`);
  return { code: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** the bundle's step list, from the first-boot program the build wrote (so the test follows its changes) */
async function firstbootSteps(built: Built): Promise<string[]> {
  const text = await fs.readFile(path.join(built.dir, 'bundle/firstboot.sh'), 'utf8').catch(() => '');
  const m = /^ALL_STEPS="([^"]+)"/m.exec(text);
  return m ? m[1].split(/\s+/) : [];
}

/**
 * Strings that must not survive in unencrypted storage after first boot: a chunk from the middle of each
 * secret the build put in the bundle (plain secrets/*, the tang-sealed secrets, the Flux secrets manifest) and
 * of the device's private host key as found on its disk. A chunk finds the file again and says nothing about it.
 */
async function secretNeedles(built: Built, hostPrivateKey: string | null, fluxSecretsOnDevice: string): Promise<{ name: string; needle: string }[]> {
  const out: { name: string; needle: string }[] = [];
  const chunk = (name: string, text: string) => {
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length >= 40 && !l.startsWith('-----') && !/^[#\w-]+:\s*[\w.-]*$/.test(l));
    if (lines.length) {
      const l = lines[Math.floor(lines.length / 2)];
      out.push({ name, needle: l.slice(Math.floor(l.length / 2) - 20, Math.floor(l.length / 2) + 20) });
    } else if (text.trim().length >= 16) out.push({ name, needle: text.trim() });
  };
  const b = path.join(built.dir, 'bundle');
  for (const f of await fs.readdir(path.join(b, 'secrets')).catch(() => [] as string[])) chunk(`secrets/${f}`, await fs.readFile(path.join(b, 'secrets', f), 'utf8'));
  for (const f of await fs.readdir(b).catch(() => [] as string[])) if (/sealed|\.jwe$/.test(f)) chunk(f, await fs.readFile(path.join(b, f), 'utf8'));
  for (const f of await fs.readdir(path.join(b, 'flux')).catch(() => [] as string[])) if (/secret/.test(f)) chunk(`flux/${f}`, await fs.readFile(path.join(b, 'flux', f), 'utf8'));
  if (hostPrivateKey) chunk('the device\'s private host key', hostPrivateKey);
  // sealed to tang, the Flux secrets (deploy key, SOPS keys) are not in clear in the build: take them as the device
  // holds them on its encrypted volume, each value base64 and decoded
  for (const d of parseAllDocuments(fluxSecretsOnDevice)) {
    const o = d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
    if (o?.kind !== 'Secret') continue;
    for (const [k, v] of Object.entries(o.data ?? {})) {
      if (k.endsWith('.pub') || k === 'known_hosts') continue;
      chunk(`Flux secret ${o.metadata?.name}/${k} (base64)`, v);
      chunk(`Flux secret ${o.metadata?.name}/${k}`, Buffer.from(v, 'base64').toString('utf8'));
    }
  }
  return out;
}

async function grepTree(dir: string | null, needles: { name: string; needle: string }[]): Promise<string[]> {
  if (!dir) return [];
  const hits: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const b = await fs.readFile(p, 'latin1');
        for (const n of needles) if (b.includes(n.needle)) hits.push(`${n.name} in ${p}`);
      }
    }
  };
  await walk(dir);
  return hits;
}

/**
 * Run as root in the guest: take the deploy key and known_hosts from the Flux secret K3s would apply (on the
 * encrypted volume), and ask the Git server for its refs the way Flux's source-controller does, with the
 * host key checked strictly. The key stays on the device (a tmpfs directory removed at the end).
 */
function gitProbeScript(url: string): string {
  const m = /^ssh:\/\/([^@]+)@([^/:]+)(?::(\d+))?(\/.*)$/.exec(url)!;
  return `set -eu
d=$(mktemp -d /run/edgeforge-e2e-git.XXXXXX); trap 'rm -rf "$d"' EXIT
${fluxSecretOnDevice('$d', `        for k, f in (('identity', 'id'), ('known_hosts', 'kh')):
            p = os.path.join(d, f)
            with open(p, 'wb') as o: o.write(base64.b64decode(doc['data'][k]))
            os.chmod(p, 0o600)`)}
[ -f "$d/id" ] || { echo NO_SECRET flux-system; exit 0; }
ssh -F /dev/null -i "$d/id" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$d/kh" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ConnectTimeout=30 ${m[3] ? `-p ${m[3]} ` : ''}${m[1]}@${m[2]} "git-upload-pack '${m[4]}'" </dev/null | head -c 2000
`;
}

/** until the data volume is mounted with its binds (and, with `k3s`, K3s is active) or `sec` pass */
async function waitMounted(target: SshTarget, sec: number, k3s = false): Promise<{ ok: boolean; state: string }> {
  const end = Date.now() + sec * 1000;
  let state = '';
  for (;;) {
    const r = await sshRun(target, 'echo "rancher: $(findmnt -n -o SOURCE /var/lib/rancher || echo not mounted)"; echo "secrets: $(findmnt -n -o SOURCE /var/lib/edgeforge/secrets || echo not mounted)"; echo "k3s: $(systemctl is-active k3s.service)"', 40);
    state = r.stdout.trim().split('\n').join('; ') || r.stderr.trim();
    const binds = /rancher: \S*edgeforge-data\S*\[\/rancher\]/.test(state) && /secrets: \S*edgeforge-data\S*\[\/edgeforge-secrets\]/.test(state);
    if (binds && (!k3s || /k3s: active/.test(state))) return { ok: true, state };
    if (Date.now() > end) return { ok: false, state };
    await new Promise((res) => setTimeout(res, 10_000));
  }
}

async function main(): Promise<number> {
  const checks = new Checks();
  const skipSmoke = process.env.EDGEFORGE_E2E_SKIP_SMOKE === '1';
  if (!skipSmoke) checks.declare('base: image built', ...SMOKE_CHECKS);
  else checks.declare('base: image built');
  checks.declare(...Object.values(C));
  checks.declare(...Object.values(STATUS_CHECKS));
  checks.declare(...Object.values(FIRSTBOOT_CHECKS));
  checks.declare(...Object.values(DAY2_CHECKS));
  checks.declare(...Object.values(AIRGAP_CHECKS));
  checks.declare(...Object.values(OCI_CHECKS));
  checks.declare(...Object.values(OS_CHECKS));
  const work = process.env.EDGEFORGE_E2E_WORK ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'edgeforge-e2e-')));
  await fs.mkdir(work, { recursive: true });
  log(`work dir ${work} (serial logs, build output, images; kept for inspection when a check fails)`);

  // 1. base
  let base: BaseImageInfo;
  try {
    base = await stage('base image', () => ensureBaseImage());
    checks.pass('base: image built', `${base.path} (${(base.size / 2 ** 20).toFixed(0)} MiB, kernel ${base.kernelVersion})`);
  } catch (err) {
    checks.fail('base: image built', (err as Error).message);
    checks.skipRest('', 'the base image could not be built');
    return finish(checks);
  }

  // OS updates: three releases' bundles, made beside the smoke boot and the first boots (scripts/e2e/os-update.ts)
  const edgeLog0 = path.join(work, 'edgeforge-os-releases.log');
  const osReleases: Promise<OsReleases | undefined> = makeOsReleases({ work, base: base.path, inventory: EXAMPLE, edgeforge: (a) => edgeforge(a, edgeLog0) }).catch((err) => {
    log(`OS releases: ${(err as Error).message}`);
    return undefined;
  });

  // 2. smoke
  if (!skipSmoke) {
    await stage('smoke boot (plain NoCloud seed)', () => smokeBase(checks, base, work, { bootMs: 240_000, finishMs: BOOT_TIMEOUT }));
  }

  // 3. build + materialize
  const tangDir = path.join(work, 'tang');
  let tang: TangServer | undefined;
  let git: GitServer | undefined;
  let deployKeyPub = '';
  let fluxSecretsOnDevice = '';
  let built: Built | undefined;
  const edgeLog = path.join(work, 'edgeforge.log');
  const fleetDir = path.join(work, 'fleet');
  const sshKey = path.join(work, 'id_ed25519');
  const buildBase = base;
  let status: E2eStatus | undefined;
  let oci: E2eOci | undefined;
  let day2Published: string | undefined;
  let fluxPins: { image: string; file: string }[] = [];
  let osRel: OsReleases | undefined;
  let osSource: OsSource | undefined;
  try {
    await stage('fleet: fixtures (tang, stand-ins, test inventory)', async () => {
      await fs.rm(fleetDir, { recursive: true, force: true });
      await fs.mkdir(fleetDir, { recursive: true });
      if (!existsSync(sshKey)) await $`ssh-keygen -q -t ed25519 -N ${''} -C edgeforge-e2e -f ${sshKey}`;
      tang = await startTang(tangDir);
      git = await startGit(path.join(work, 'git'));
      const advFile = path.join(fleetDir, 'tang.adv.jws');
      await fs.writeFile(advFile, await fetchAdv(tang.port));
      const standin = await makeK3sStandin(path.join(fleetDir, 'bundles/k3s'));
      const canary = await makeK3sStandin(path.join(fleetDir, CANARY_BUNDLE), CANARY_VERSION);
      const flux = await makeFluxStandin(path.join(fleetDir, 'bundles/flux'));
      await makeTestFleet({ dir: fleetDir, standin, canary, flux, tangThumbprint: tang.thumbprint, tangAdvertisementFile: advFile, sshPublicKey: await fs.readFile(`${sshKey}.pub`, 'utf8'), gitKnownHostsKey: git.hostKey });
      // airgap: the Flux controllers' image archives, made here and pinned in the inventory (scripts/e2e/airgap.ts)
      fluxPins = await pinFluxImageArchives(path.join(fleetDir, 'inventory.yaml'), flux.file);
      status = await prepareStatus(work, path.join(fleetDir, 'inventory.yaml')).catch((err) => (log(`fleet status: ${(err as Error).message}`), undefined));
      oci = await prepareOci(work, path.join(fleetDir, 'inventory.yaml')).catch((err) => (log(`oci: ${(err as Error).message}`), undefined));
      // OS updates: the device's profile gets A/B cards, starting on the release made from the base
      const r = await stage('os: bundles of three releases', () => osReleases);
      await checks.run(OS_CHECKS.bundles, async () => {
        expect(r, 'the bundles could not be made (see the log)');
        for (const b of Object.values(r!.releases)) await $`rauc info ${`--keyring=${path.join(r!.keys, 'os-update/signing-cert.pem')}`} ${b.file}`;
        return Object.entries(r!.releases).map(([v, b]) => `${v}: ${path.basename(b.file)} ${b.sha256.slice(0, 12)}`).join('; ');
      });
      if (r) {
        osRel = r;
        await setOsInventory(path.join(fleetDir, 'inventory.yaml'), r, RELEASES.v1);
        await shareOsKey(r, path.join(fleetDir, 'keys'));
        osSource = await startOsSource(path.join(work, 'os-source'));
      }
    });
    await stage('fleet: edgeforge build --base-image', async () => {
      await checks.run(C.build, async () => {
        const out = path.join(work, 'out');
        await fs.rm(out, { recursive: true, force: true });
        const r = await edgeforge(['build', '-i', path.join(fleetDir, 'inventory.yaml'), '-o', out, '--keys', path.join(fleetDir, 'keys'), '--only', DEVICE, '--base-image', buildBase.path, '--example-admin', '--json'], edgeLog);
        let doc: { devices?: { id: string; status: string; phase: string; message: string }[] } = {};
        try {
          doc = JSON.parse(r.stdout);
        } catch {
          /* reported below */
        }
        const d = doc.devices?.find((x) => x.id === DEVICE);
        expect(r.code === 0 && d?.status === 'ok', `edgeforge build exit ${r.code}${d ? `, ${DEVICE}: ${d.status} at ${d.phase}: ${d.message}` : ''}; ${r.stderr.trim().split('\n').slice(-3).join(' | ')} (log ${edgeLog})`);
        const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
        const dev = manifest.devices.find((x: { id: string }) => x.id === DEVICE);
        expect(dev?.artifacts?.some((a: { kind: string }) => a.kind === 'disk-delta'), 'the manifest lists no disk-delta artifact for the device');
        built = { out, dir: path.join(out, 'devices', DEVICE), image: path.join(work, `${DEVICE}.img`), manifest };
        // the operator's step: the device's deploy key goes onto the Git server (here: the stand-in)
        const secrets = await fs.readFile(path.join(built.dir, 'bundle/flux/edgeforge-flux-secrets.yaml'), 'utf8').catch(() => '');
        for (const d of parseAllDocuments(secrets)) {
          const o = d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
          if (o?.kind === 'Secret' && o.metadata?.name === 'flux-system' && o.data?.['identity.pub']) deployKeyPub = Buffer.from(o.data['identity.pub'], 'base64').toString('utf8').trim();
        }
        // sealed to tang, the Flux secret is not in the bundle: the keystore's public record has the key
        if (!deployKeyPub) deployKeyPub = (JSON.parse(await fs.readFile(path.join(fleetDir, 'keys/devices', DEVICE, 'public.json'), 'utf8').catch(() => '{}')) as { deployKey?: { publicKey?: string } }).deployKey?.publicKey?.trim() ?? '';
        if (deployKeyPub) await git!.authorize(deployKeyPub);
        if (status) await startStatusBroker(status, { inventory: path.join(fleetDir, 'inventory.yaml'), keys: path.join(fleetDir, 'keys'), device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }).catch((err) => log(`fleet status broker: ${(err as Error).message}`));
        // the same device on the OCI transport: its build, the registry and issuer on the host, publish (scripts/e2e/oci.ts)
        if (oci) await startOci(oci, { keys: path.join(fleetDir, 'keys'), device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }).catch((err) => ((oci!.error = (err as Error).message), log(`oci: ${(err as Error).message}`)));
        return `${dev.artifacts.length} artifacts${deployKeyPub ? '; deploy key authorized on the Git stand-in' : ''}`;
      });
    });
    // day 2: the fleet's GitOps tree, as `edgeforge gitops` writes it, is what the stand-in serves
    if (built && git) {
      await stage('fleet: edgeforge gitops -> the Git stand-in', async () => {
        day2Published = await publishGitopsTree({ git: git!, work, inventory: path.join(fleetDir, 'inventory.yaml'), keys: path.join(fleetDir, 'keys'), edgeforge: (a) => edgeforge(a, edgeLog) }).catch((err) => (log(`day 2: ${(err as Error).message}`), undefined));
      });
    }
    if (built) {
      await stage('image: materialize', async () => {
        const ok = await checks.run(C.materialize, async () => {
          const r = await edgeforge(['image', 'materialize', '-o', built!.out, '--device', DEVICE, '--to', built!.image], edgeLog);
          expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
          // written to a larger card: the space after the image is the data volume's (an A/B image ends at its last slot)
          await fs.truncate(built!.image, (await fs.stat(built!.image)).size + CARD_EXTRA);
          const st = await fs.stat(built!.image);
          return `${(st.size / 2 ** 20).toFixed(0)} MiB card, ${(st.blocks * 512 / 2 ** 20).toFixed(0)} MiB allocated`;
        });
        if (!ok) built = undefined;
      });
    }
    if (built) {
      await checks.run(C.seedPart, async () => {
        const parts = await partitions(built!.image);
        const cidata = parts.find((p) => p.name.toUpperCase() === 'CIDATA');
        expect(cidata, `no CIDATA partition (partitions: ${parts.map((p) => `${p.number}:${p.name}`).join(', ')})`);
        const fat = new FatReader(built!.image, cidata!);
        const files = (await fat.ls()).map((f) => f.toLowerCase());
        expect(['user-data', 'meta-data'].every((f) => files.some((x) => x.startsWith(f))), `CIDATA holds ${files.join(', ')}`);
        const ud = (await fat.read('user-data'))!.toString('utf8');
        const mine = await fs.readFile(path.join(built!.dir, 'seed/user-data'), 'utf8');
        expect(ud === mine, 'CIDATA user-data differs from the build\'s seed/user-data');
        return `partition ${cidata!.number} at ${cidata!.start} bytes, ${cidata!.size} bytes`;
      });
      await checks.run(C.airgapPart, async () => {
        const parts = await partitions(built!.image);
        const k3s = parts.find((p) => p.name === 'edgeforge-k3s');
        expect(k3s, `no edgeforge-k3s partition (partitions: ${parts.map((p) => `${p.number}:${p.name}`).join(', ')})`);
        // (mdir -b names a directory with a trailing /)
        const files = (await new FatReader(built!.image, k3s!).ls()).map((f) => f.toLowerCase().replace(/\/$/, ''));
        expect(['k3s-arm64', 'install.sh', CANARY_DIR].every((f) => files.includes(f)), `the partition holds ${files.join(', ')}`);
        const bin = await new FatReader(built!.image, k3s!).read('k3s-arm64');
        expect(bin?.equals(await fs.readFile(path.join(fleetDir, 'bundles/k3s/k3s-arm64'))), 'k3s-arm64 on the partition is not the stable bundle\'s');
        // the rollout's canary release, in its own directory
        const cbin = await new FatReader(built!.image, k3s!).read(`${CANARY_DIR}/k3s-arm64`);
        expect(cbin?.equals(await fs.readFile(path.join(fleetDir, CANARY_BUNDLE, 'k3s-arm64'))), `${CANARY_DIR}/k3s-arm64 on the partition is not the canary bundle's`);
        return `partition ${k3s!.number} (${(k3s!.size / 2 ** 20).toFixed(0)} MiB): ${files.join(', ')} (${CANARY_DIR}/: the canary release)`;
      });
    }
  } catch (err) {
    log(`build stage error: ${(err as Error).stack}`);
  }
  if (!built) {
    checks.skipRest('', 'no device image (see the build/materialize checks)');
    await tang?.close();
    await git?.close();
    await closeStatus(status);
    await closeOci(oci);
    return finish(checks);
  }

  // 4. boot 1, tang up
  const hostKey = (await fs.readFile(path.join(built.dir, 'bundle/ssh/ssh_host_ed25519_key.pub'), 'utf8').catch(() => '')).trim();
  const mac = (await fs.readFile(path.join(built.dir, 'seed/network-config'), 'utf8')).match(/macaddress:\s*"?([0-9a-f:]{17})/i)?.[1];
  const sshPort = await freePort();
  const target: SshTarget = { port: sshPort, user: 'ops', identity: sshKey, hostKey, alias: DEVICE, workDir: work };
  const boot = await bootFiles(built.image, work);
  const live: Record<string, string> = {};
  let cleanOff1 = false;
  // boot 0 (docs/e2e.md): tang and Git unreachable at first, then the power cut as the k3s step begins
  const fb: FirstbootE2e = {
    image: built.image, work, boot, mac, sshPort, target, timeoutMs: BOOT_TIMEOUT, airgapBinary: `${CANARY_DIR}/k3s-arm64`,
    tang: { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, port: () => tang!.port },
    git: { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, port: () => git!.port },
  };
  const cut = await bootLateThenCut(checks, fb, freePort);
  const tangRequestsBoot1Start = tang!.requests.length;
  {
    const vm = new Vm({
      disks: [{ path: built.image }], kernel: boot.kernel, initrd: boot.initrd, bios: boot.bios, append: `${boot.cmdline} ${TEST_BACKOFF}`, mac,
      serialLog: path.join(work, 'boot1-serial.log'), sshHostPort: sshPort, qmpSocket: path.join(work, 'qmp1.sock'),
      // airgap: no route anywhere but these forwards
      restrict: true,
      guestfwd: [
        { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: tang!.port },
        { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, hostPort: git!.port, perConnection: true },
        ...(status ? [{ guestIp: STATUS_GUEST_IP, guestPort: status.port, hostPort: status.port, perConnection: true }] : []),
        ...(oci?.registry ? [{ guestIp: REGISTRY_GUEST.ip, guestPort: REGISTRY_GUEST.port, hostPort: oci.registryPort, perConnection: true }, { guestIp: ISSUER_GUEST.ip, guestPort: ISSUER_GUEST.port, hostPort: oci.issuerPort, perConnection: true }] : []),
        ...(osSource ? [{ guestIp: OS_GUEST.ip, guestPort: OS_GUEST.port, hostPort: osSource.port, perConnection: true }] : []),
      ],
    });
    try {
      await stage('boot 1: kernel', () => checks.run(C.boot1, async () => {
        await vm.waitFor(/systemd\[1\]: .*|Welcome to .*Debian/, 240_000, 'systemd start');
        return `systemd after ${vm.elapsed().toFixed(0)}s`;
      }));
      const finished = await stage('boot 1: cloud-init + first-boot program', () => checks.run(C.cloudInit, async () => {
        const m = await vm.waitFor(/Cloud-init v\. \S+ finished at [^\n]*Datasource (\S+[^\n]*)\n/, BOOT_TIMEOUT, 'cloud-init finished');
        expect(/NoCloud/.test(m[1]), `datasource ${m[1]}`);
        return `finished after ${vm.elapsed().toFixed(0)}s, ${m[1].trim()}`;
      }));
      if (!finished && vm.running) log('cloud-init did not finish; trying SSH anyway to collect what happened');
      // the first-boot service runs after cloud-init (resuming boot 0's run)
      await stage('boot 1: first-boot service', () => waitFirstbootDone(vm, BOOT_TIMEOUT));
      await stage('boot 1: SSH (pinned host key) + live state', () => checks.run(C.ssh, async () => {
        if (!vm.running) notReached('the guest is not running');
        if (!hostKey) throw new Error('the build has no bundle/ssh/ssh_host_ed25519_key.pub to pin');
        const w = await sshWait(target, finished ? 120 : 30);
        expect(w.ok, `no SSH login as ops with the pinned key: ${w.lastError}`);
        const q = async (k: string, cmd: string) => {
          const r = await sshRun(target, cmd, 60);
          live[k] = `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr}` : ''}`.trim();
        };
        await q('hostname', 'hostname');
        await q('crypt', 'sudo -n dmsetup ls --target crypt; echo; lsblk -o NAME,TYPE,FSTYPE,SIZE,MOUNTPOINT');
        await q('firstbootLog', 'sudo -n cat /var/log/edgeforge-firstboot.log');
        await q('k3s', 'systemctl is-active k3s.service; systemctl is-enabled k3s.service');
        await q('k3sVersion', '/usr/local/bin/k3s --version');
        // the data volume is mounted over /var/lib/rancher: its files can only be seen while it is open
        await q('rancher', 'sudo -n sh -c "cd /var/lib/rancher/k3s 2>/dev/null && find . -type f | sort | xargs -r sha256sum"; findmnt -n -o SOURCE /var/lib/rancher');
        await q('clevis', 'sudo -n journalctl -b --no-pager -o cat -u "clevis*" -u "systemd-cryptsetup@*" 2>/dev/null | tail -n 20');
        // kept in memory only (not in boot1-live.txt): the secrets check looks for them in unencrypted storage
        fluxSecretsOnDevice = (await sshRun(target, 'sudo -n cat /var/lib/rancher/k3s/server/manifests/edgeforge-flux-secrets.yaml', 60)).stdout;
        await fs.writeFile(path.join(work, 'boot1-live.txt'), Object.entries(live).map(([k, v]) => `## ${k}\n${v}\n`).join('\n'));
        return `logged in as ops; hostname ${live.hostname}`;
      }));
      await stage('boot 1: Git over SSH from the device', () => checks.run(C.git, async () => {
        if (!vm.running) notReached('the guest is not running');
        if (!deployKeyPub) notReached('the build made no flux-system secret with a deploy key');
        const r = await sshRun(target, 'sudo -n sh -s', 120, gitProbeScript(`ssh://git@${GIT_GUEST.ip}/factory/fleet.git`));
        live.git = `${r.stdout}\n[stderr] ${r.stderr}`;
        if (/NO_SECRET/.test(r.stdout)) notReached(`the Flux secret is not on the device: ${r.stdout.trim().slice(0, 200)}`);
        const head = git!.head;
        expect(r.stdout.includes(`${head} refs/heads/main`), `no ref advertisement for main (${head}) from the Git stand-in: ${(r.stdout + r.stderr).trim().slice(0, 400)}`);
        const fpr = (await $({ input: deployKeyPub + '\n' })`ssh-keygen -lf -`).stdout.split(/\s+/)[1];
        expect(git!.log().includes(`Accepted publickey for git from`) && git!.log().includes(fpr), `the Git stand-in did not log the device's deploy key ${fpr}`);
        return `upload-pack advertised main ${head.slice(0, 12)}; the stand-in accepted deploy key ${fpr}; host key checked against the pinned known_hosts`;
      }));
      await stage('boot 1: day 2 (upgrade Plans in Git, renewal timer)', () =>
        day2Checks(checks, { target, running: vm.running, git, published: day2Published, work, inventory: path.join(fleetDir, 'inventory.yaml'), device: DEVICE }),
      );
      await stage('boot 1: airgap (network, image archives)', () =>
        airgapChecks(checks, {
          target, running: vm.running, deviceDir: built!.dir, pins: fluxPins, hostPorts: [git!.port, tang!.port],
          // (tang's forward is one connection, made at start: the unlock check proves it answered)
          allowed: [{ name: 'git', ...GIT_GUEST }, ...(status?.broker ? [{ name: 'status broker', ip: STATUS_GUEST_IP, port: status.port }] : [])],
        }),
      );
      await stage('boot 1: fleet status (broker on the host)', () =>
        statusChecks(checks, status, { target, running: vm.running, inventory: path.join(fleetDir, 'inventory.yaml'), out: built!.out, device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }),
      );
      await stage('boot 1: OCI transport (registry on the host)', () => ociChecks(checks, oci, { target, running: vm.running, device: DEVICE, live }));
      await stage('boot 1: power off', () => checks.run(C.poweroff1, async () => {
        if (!vm.running) notReached(`the guest already stopped (qemu exit ${vm.exitCode})`);
        const r = await sshRun(target, 'sudo -n systemctl poweroff', 30);
        if (r.code !== 0 && r.code !== 255) log(`poweroff over SSH: exit ${r.code} ${r.stderr.trim()}`);
        try {
          await vm.waitExit(r.code === 0 || r.code === 255 ? 180_000 : 5_000);
        } catch {
          log('no power-off over SSH: pressing the power button (QMP system_powerdown)');
          await vm.powerButton();
          await vm.waitExit(180_000);
        }
        expect(vm.exitCode === 0, `qemu exit ${vm.exitCode}`);
        cleanOff1 = true;
        return `off after ${vm.elapsed().toFixed(0)}s`;
      }));
    } finally {
      await vm.close();
    }
    const con = vm.console;
    await resumedChecks(checks, cut, live.firstbootLog, work);
    await fs.writeFile(path.join(work, 'boot1-tang-requests.txt'), tang!.requests.slice(tangRequestsBoot1Start).join('\n'));

    // 5. the disk
    await stage('disk: read after power-off', async () => {
      const noDisk = cleanOff1 ? '' : 'no clean power-off after boot 1, so the ext4 journal may hold unwritten changes';
      const parts = await partitions(built!.image);
      const rootPart = parts.find((p) => p.number === buildBase.root.number);
      const root = rootPart && !noDisk ? await Ext4Reader.open(built!.image, rootPart) : undefined;
      const need = () => {
        if (!root) notReached(noDisk || 'no root partition');
        return root!;
      };
      try {
        const steps = await firstbootSteps(built!);
        const fbLog = root ? ((await root.text('/var/log/edgeforge-firstboot.log')) ?? '') : live.firstbootLog ?? '';
        const stepOk = (s: string) => new RegExp(`\\[${s}\\] ok\\b`).test(fbLog) || new RegExp(`edgeforge-firstboot\\[${s}\\]: ok\\b`).test(con);
        const stepsDone = steps.filter(stepOk);
        await checks.run(C.cloudInit, async () => {
          const r = need();
          const want = /instance-id:\s*"?([^"\s]+)/.exec(await fs.readFile(path.join(built!.dir, 'seed/meta-data'), 'utf8'))?.[1];
          const got = (await r.text('/var/lib/cloud/data/instance-id'))?.trim();
          expect(got && got === want, `cloud-init's instance-id is ${JSON.stringify(got)}, the seed's is ${want}`);
          expect(await r.exists('/var/lib/cloud/instance/boot-finished'), 'no /var/lib/cloud/instance/boot-finished');
          return `instance-id ${got}`;
        });
        await checks.run(C.firstboot, async () => {
          if (!fbLog && !/edgeforge-firstboot\[/.test(con)) notReached('the first-boot program left no log and printed nothing (did cloud-init run its runcmd?)');
          expect(steps.length > 0, 'cannot read the step list from bundle/firstboot.sh');
          const failed = /FAILED: ([^\n]*)/.exec(fbLog) ?? /edgeforge-firstboot\[(\w+)\]: FAILED: ([^\n]*)/.exec(con);
          const missing = steps.filter((s) => !stepsDone.includes(s));
          expect(missing.length === 0 && /\[end\] done|edgeforge-firstboot\[end\]: done/.test(fbLog + con), `steps done: ${stepsDone.join(' ') || 'none'}; not done: ${missing.join(' ')}${failed ? `; ${failed[0].slice(0, 400)}` : ''}`);
          return `${steps.join(' → ')}`;
        });
        await checks.run(C.hostname, async () => {
          const h = (await need().text('/etc/hostname'))?.trim();
          expect(h === DEVICE, `/etc/hostname is ${JSON.stringify(h)}`);
          if (live.hostname) expect(live.hostname.trim() === DEVICE, `the running hostname was ${live.hostname}`);
          return h;
        });
        await checks.run(C.users, async () => {
          const r = need();
          const passwd = (await r.text('/etc/passwd')) ?? '';
          const ops = passwd.split('\n').find((l) => l.startsWith('ops:'));
          expect(ops, 'no user ops in /etc/passwd');
          const home = ops!.split(':')[5];
          const ak = (await r.text(`${home}/.ssh/authorized_keys`)) ?? '';
          const mine = (await fs.readFile(`${sshKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
          expect(ak.includes(mine), `${home}/.ssh/authorized_keys does not hold the inventory's key`);
          const foreign = ak.split('\n').filter((l) => l.trim() && !l.includes(mine.split(' ')[1]));
          expect(foreign.length === 0, `${home}/.ssh/authorized_keys holds other keys: ${foreign.length}`);
          const shadow = (await r.text('/etc/shadow')) ?? '';
          for (const u of ['ops', 'root']) {
            const pw = shadow.split('\n').find((l) => l.startsWith(`${u}:`))?.split(':')[1] ?? '';
            expect(/^[!*]/.test(pw), `${u}'s password is not locked`);
          }
          return `ops (home ${home}), key-only, root locked`;
        });
        await checks.run(C.hostKeys, async () => {
          const r = need();
          const pub = (await r.text('/etc/ssh/ssh_host_ed25519_key.pub'))?.trim().split(/\s+/).slice(0, 2).join(' ');
          const want = hostKey.split(/\s+/).slice(0, 2).join(' ');
          expect(pub === want, `/etc/ssh/ssh_host_ed25519_key.pub is not the pinned key`);
          const others = ((await r.ls('/etc/ssh')) ?? []).filter((n) => n.startsWith('ssh_host_') && !n.startsWith('ssh_host_ed25519_key'));
          expect(others.length === 0, `other host keys present: ${others.join(', ')}`);
          const st = await r.stat('/etc/ssh/ssh_host_ed25519_key');
          expect(st && (st.mode & 0o077) === 0, `private host key mode ${st?.mode.toString(8)}`);
          return 'pinned ed25519 only; SSH login with StrictHostKeyChecking against it ' + (checks.results.find((x) => x.name === C.ssh)?.outcome ?? '');
        });
        // the data volume: a partition after the root, LUKS2, clevis token bound to our tang
        let dataPart: Part | undefined;
        await checks.run(C.luks, async () => {
          const after = parts.filter((p) => p.start > (rootPart?.start ?? 0));
          if (!after.length) {
            const enc = fbLog.match(/\[encrypt_data_volume\][^\n]*/g)?.slice(-1)[0] ?? con.match(/edgeforge-firstboot\[encrypt_data_volume\][^\n]*/g)?.slice(-1)[0];
            if (!stepsDone.includes('encrypt_data_volume')) notReached(`no partition after the root, and the encrypt_data_volume step did not complete${enc ? `: ${enc.slice(0, 300)}` : ''}`);
            throw new Error('encrypt_data_volume completed but there is no partition after the root');
          }
          for (const p of after) {
            const dump = await luksDump(built!.image, p);
            if (!dump) continue;
            dataPart = p;
            expect(/^Version:\s*2/m.test(dump), `partition ${p.number} is LUKS but not version 2`);
            expect(/clevis/.test(dump), `partition ${p.number}: no clevis token in the LUKS2 header`);
            return `partition ${p.number} (${(p.size / 2 ** 20).toFixed(0)} MiB): LUKS2 with a clevis token`;
          }
          throw new Error(`no LUKS header on the partition(s) after the root: ${after.map((p) => p.number).join(', ')}`);
        });
        await checks.run(C.unlocked, async () => {
          if (!dataPart) notReached('no data volume');
          const reqs = tang!.requests.slice(tangRequestsBoot1Start);
          const rec = reqs.filter((x) => x.startsWith('POST /rec/'));
          expect(live.crypt !== undefined, 'no live state (SSH failed), so the open mapping could not be seen');
          const open = live.crypt.split('\n\n')[0].trim();
          expect(open && !/No devices found/i.test(open), `no dm-crypt mapping was open on boot 1 (dmsetup: ${open || 'empty'})`);
          expect(rec.length > 0, `the volume was open but tang saw no recovery request (requests: ${reqs.join(', ') || 'none'}): it was not unlocked through tang`);
          return `mapping ${open.split(/\s+/)[0]} open; tang saw ${rec.length} recovery request(s)`;
        });
        await checks.run(C.k3sConfig, async () => {
          const r = need();
          const want = await fs.readFile(path.join(built!.dir, 'bundle/k3s/config.yaml'));
          const got = await r.read('/etc/rancher/k3s/config.yaml');
          if (!got) {
            if (!stepsDone.includes('k3s')) notReached('the k3s step did not run');
            throw new Error('/etc/rancher/k3s/config.yaml missing');
          }
          expect(got.equals(want), '/etc/rancher/k3s/config.yaml differs from the build\'s k3s-config artifact');
          const st = await r.stat('/etc/rancher/k3s/config.yaml');
          expect(st && (st.mode & 0o077) === 0, `mode ${st?.mode.toString(8)}`);
          return `${want.length} bytes, mode ${st!.mode.toString(8)}`;
        });
        await checks.run(C.k3sAirgap, async () => {
          const r = need();
          const inst = await r.text(INSTALL_LOG);
          if (!inst) {
            if (!stepsDone.includes('k3s')) notReached(`the k3s step did not complete${/\[k3s\][^\n]*FAILED[^\n]*/.exec(fbLog)?.[0] ? `: ${/\[k3s\][^\n]*FAILED[^\n]*/.exec(fbLog)![0].slice(0, 300)}` : ''}`);
            throw new Error(`the installer never ran (${INSTALL_LOG} missing)`);
          }
          expect(/INSTALL_K3S_SKIP_DOWNLOAD=true/.test(inst), 'install.sh ran without INSTALL_K3S_SKIP_DOWNLOAD=true');
          const fromPart = /reading the K3s airgap files from partition (\S+)/.exec(fbLog + con)?.[1];
          expect(fromPart, 'the first-boot log does not say the airgap files came from the image\'s K3s partition');
          const bin = await r.read('/usr/local/bin/k3s');
          // the device's site is a canary site: its ring's bundle (k3s.install.canary)
          const want = await fs.readFile(path.join(fleetDir, CANARY_BUNDLE, 'k3s-arm64'));
          expect(bin?.equals(want), '/usr/local/bin/k3s is not its ring\'s bundle\'s binary');
          const imagesLive = /agent\/images\/k3s-airgap-images-arm64\.tar\.zst/.test(live.rancher ?? '');
          expect(imagesLive || (await r.exists('/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst')), 'images archive not in /var/lib/rancher/k3s/agent/images');
          const run = (await r.text(STANDIN_LOG)) ?? '';
          expect(/running server/.test(run), `K3s was not started as a server (stand-in log: ${run.trim().split('\n').slice(-2).join(' | ') || 'empty'})`);
          const cfgSha = /config \/etc\/rancher\/k3s\/config.yaml sha256 (\w+)/.exec(run)?.[1];
          const wantSha = (await $`sha256sum ${path.join(built!.dir, 'bundle/k3s/config.yaml')}`).stdout.split(' ')[0];
          expect(cfgSha === wantSha, 'K3s started before its config was in place (or with another one)');
          return `airgap install from ${fromPart}, unit ${/enabled (\S+)/.exec(inst)?.[1] ?? '?'}, started with the rendered config${live.k3s ? ` (live: ${live.k3s.split('\n')[0]})` : ''}`;
        });
        await checks.run(C.k3sRing, async () => {
          const r = need();
          // what the inventory gives the device: its ring's version (the day-2 check finds its site's Plans at the same one)
          const fleet = await loadInventoryFile(path.join(fleetDir, 'inventory.yaml'), 'inventory.yaml');
          const d = fleet.active.find((x) => x.id === DEVICE)!;
          const want = deviceK3sVersion(d, fleet);
          expect(ringOf(d) === 'canary' && want === CANARY_VERSION && fleet.k3s.version !== want, `test fleet: ${DEVICE} is in the ${ringOf(d)} ring at ${want} (stable ${fleet.k3s.version}); the test needs a rollout with the device in the canary ring`);
          const inst = (await r.text(INSTALL_LOG)) ?? '';
          if (!inst) notReached('the installer never ran (see the airgap install check)');
          expect(new RegExp(`INSTALL_K3S_VERSION=${want.replace(/[.+]/g, '\\$&')}\\n`).test(inst), `install.sh ran with ${/INSTALL_K3S_VERSION=\S*/.exec(inst)?.[0] ?? 'no INSTALL_K3S_VERSION'}, not ${want}`);
          const recorded = ((await r.text(`${STATE_DIR}/k3s-installed`)) ?? '').trim();
          expect(recorded.startsWith(`${want} airgap `), `${STATE_DIR}/k3s-installed says ${JSON.stringify(recorded)}`);
          expect(new RegExp(`k3s version ${want.replace(/[.+]/g, '\\$&')} `).test(live.k3sVersion ?? ''), `/usr/local/bin/k3s --version on the device: ${JSON.stringify(live.k3sVersion ?? '(not read)')}`);
          const stable = await fs.readFile(path.join(fleetDir, 'bundles/k3s/k3s-arm64'));
          expect(!(await r.read('/usr/local/bin/k3s'))?.equals(stable), '/usr/local/bin/k3s is the stable release\'s binary');
          return `${DEVICE} (canary ring) runs ${want} from ${CANARY_DIR}/ on the K3s partition; the stable ring's ${fleet.k3s.version} is at the partition's root; recorded "${recorded}"`;
        });
        await checks.run(C.flux, async () => {
          const r = need();
          const arts = built!.manifest.devices.find((d) => d.id === DEVICE)!.artifacts.filter((a) => a.kind === 'flux-bootstrap');
          const src = await fs.readdir(path.join(built!.dir, 'bundle/flux')).catch(() => [] as string[]);
          const files = arts.length ? arts.map((a) => path.join(built!.out, a.path)) : src.map((f) => path.join(built!.dir, 'bundle/flux', f));
          expect(files.length > 0, 'the build made no Flux bootstrap manifests');
          const dir = '/var/lib/rancher/k3s/server/manifests';
          // on the encrypted data volume when it is mounted over /var/lib/rancher: read what SSH saw live
          const liveSums = new Map((live.rancher ?? '').split('\n').map((l) => l.trim().split(/\s+/)).filter((x) => x.length === 2).map(([h, f]) => [f.replace(/^\.\//, ''), h]));
          const onVolume = /edgeforge-data|mapper/.test(live.rancher ?? '');
          if (!stepsDone.includes('flux_bootstrap')) notReached('the flux_bootstrap step did not complete');
          const missing: string[] = [];
          for (const f of files) {
            const name = path.basename(f);
            if (onVolume) {
              const want = (await $`sha256sum ${f}`).stdout.split(' ')[0];
              if (liveSums.get(`server/manifests/${name}`) !== want) missing.push(name);
            } else if (!(await r.read(`${dir}/${name}`))?.equals(await fs.readFile(f))) missing.push(name);
          }
          expect(missing.length === 0, `not in ${dir} as built: ${missing.join(', ')}`);
          return `${files.length} manifest(s) in ${dir}${onVolume ? ' (on the encrypted data volume, checked live over SSH)' : ''}`;
        });
        const needles = await secretNeedles(built!, root ? await root.text('/etc/ssh/ssh_host_ed25519_key') : null, fluxSecretsOnDevice);
        await checks.run(C.seedErased, async () => {
          expect(needles.length > 0, 'the build has no secrets to look for');
          const cidata = parts.find((p) => p.name.toUpperCase() === 'CIDATA');
          expect(cidata, 'no CIDATA partition');
          const ud = (await new FatReader(built!.image, cidata!).read('user-data'))?.toString('latin1') ?? '';
          const left = needles.filter((n) => ud.includes(n.needle)).map((n) => n.name);
          if (left.length && !stepsDone.includes('erase_secrets')) notReached(`the erase_secrets step did not run; the seed still holds ${left.join(', ')}`);
          expect(left.length === 0, `the seed partition's user-data still holds: ${left.join(', ')}`);
          return `user-data is now ${ud.length} bytes, none of ${needles.length} secrets (${needles.map((n) => n.name).join(', ')}) in it`;
        });
        await checks.run(C.cacheErased, async () => {
          const r = need();
          expect(needles.length > 0, 'the build has no secrets to look for');
          const hits = [
            ...(await grepTree(await r.dump('/var/lib/cloud'), needles)),
            ...(await grepTree(await r.dump('/var/lib/edgeforge/bundle'), needles)),
            ...(await grepTree(await r.dump('/var/log'), needles)),
          ].map((h) => h.replace(/.*\/dump-[^/]+/, ''));
          if (hits.length && !stepsDone.includes('erase_secrets')) notReached(`the erase_secrets step did not run; secrets remain: ${hits.slice(0, 4).join('; ')}`);
          expect(hits.length === 0, `secrets remain: ${hits.join('; ')}`);
          return `none of ${needles.length} secrets in /var/lib/cloud, /var/lib/edgeforge/bundle, /var/log`;
        });
      } finally {
        await root?.close();
      }
    });
  }

  // 6. boot 2 with tang: the volume must open AT BOOT through tang (boot 1 opened it with the key it had just
  //    made); boot 3 without tang: the stolen device, the volume must stay locked
  const later = async (n: 2 | 3, withTang: boolean, prev: boolean): Promise<boolean> => {
    const name = withTang ? C.reboot : C.boot2;
    const label = withTang ? `boot ${n} (tang)` : `boot ${n} (no tang)`;
    if (!prev) {
      for (const c of withTang ? [C.reboot, C.bootUnlock, C.poweroffReboot] : [C.boot2, C.locked, C.lateUnlock, C.poweroff2]) checks.notReached(c, 'the previous boot did not end in a clean power-off');
      return false;
    }
    const reqBefore = tang!.requests.length;
    const tangPort = tang!.port;
    if (!withTang) await tang!.close(); // the stolen device: its tang server is out of reach
    const vm = new Vm({
      disks: [{ path: built!.image }], kernel: boot.kernel, initrd: boot.initrd, bios: boot.bios, append: boot.cmdline, mac,
      serialLog: path.join(work, `boot${n}-serial.log`), sshHostPort: sshPort, qmpSocket: path.join(work, `qmp${n}.sock`),
      // boot 3: the route to tang exists, nothing answers (socat per connection finds the port closed) until
      // the server comes back
      guestfwd: [{ guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: tangPort, perConnection: !withTang }],
    });
    let up = false;
    let off = false;
    try {
      await stage(`${label}: up`, () => checks.run(name, async () => {
        await vm.waitFor(/Cloud-init v\. \S+ finished at|login:/, BOOT_TIMEOUT, 'boot finished (cloud-init final or a login prompt)');
        const w = await sshWait(target, 180);
        expect(w.ok, `no SSH login with the pinned key: ${w.lastError}`);
        up = true;
        return `up after ${vm.elapsed().toFixed(0)}s`;
      }));
      await stage(`${label}: volume state`, () => checks.run(withTang ? C.bootUnlock : C.locked, async () => {
        if (!up) notReached('the device did not come up');
        if (checks.results.find((x) => x.name === C.luks)?.outcome !== 'pass') notReached('no data volume was made on boot 1');
        // the unlock service may still be running just after login
        let open = '';
        for (let i = 0; i < (withTang ? 12 : 1); i++) {
          const r = await sshRun(target, 'sudo -n dmsetup ls --target crypt', 60);
          expect(r.code === 0, `dmsetup failed: ${r.stderr.trim()}`);
          open = /No devices found/i.test(r.stdout) ? '' : r.stdout.trim();
          if (open || !withTang) break;
          await new Promise((res) => setTimeout(res, 5000));
        }
        const rec = tang!.requests.slice(reqBefore).filter((x) => x.startsWith('POST /rec/')).length;
        if (withTang) {
          expect(open, 'no dm-crypt mapping open although tang was reachable');
          expect(rec > 0, 'the volume is open but tang saw no recovery request');
          const m = await waitMounted(target, 120);
          expect(m.ok, `the volume is open but the bind mounts did not follow: ${m.state}`);
          return `${open.split(/\s+/)[0]} opened at boot with ${rec} tang recovery request(s); ${m.state}`;
        }
        expect(!open, `a dm-crypt mapping is open without tang: ${open}`);
        // the unlock service writes its status as it starts; under emulation that can be after SSH is up
        let k = { stdout: '' };
        for (let i = 0; i < 12; i++) {
          k = await sshRun(target, 'systemctl is-active k3s.service; findmnt -n -o SOURCE /var/lib/rancher || echo "/var/lib/rancher: not mounted"; cat /run/edgeforge/data-volume.status 2>&1', 30);
          if (/locked since/.test(k.stdout)) break;
          await new Promise((res) => setTimeout(res, 5000));
        }
        expect(!/^active$/m.test(k.stdout), `k3s.service is active while the volume is locked (it must wait): ${k.stdout.trim()}`);
        expect(/locked since/.test(k.stdout), `no degraded-mode status in /run/edgeforge/data-volume.status: ${k.stdout.trim()}`);
        return `no dm-crypt mapping open; ${k.stdout.trim().split('\n').join('; ')}`;
      }));
      if (!withTang) {
        await stage(`boot ${n} (tang back): late unlock`, () => checks.run(C.lateUnlock, async () => {
          if (checks.results.find((x) => x.name === C.locked)?.outcome !== 'pass') notReached('the volume was not seen locked first');
          // the site's tang server comes back (same keys, same port): the unlock service's next retry must open
          // the volume, systemd must mount it and the binds, and K3s must start, with nobody logging in
          tang = await startTang(tangDir, tangPort);
          const t0 = Date.now();
          const m = await waitMounted(target, 480, true);
          expect(m.ok, `within ${Math.round((Date.now() - t0) / 1000)} s of tang's return: ${m.state}`);
          return `${Math.round((Date.now() - t0) / 1000)} s after tang came back: ${m.state}`;
        }));
      }
      await stage(`${label}: power off`, () => checks.run(withTang ? C.poweroffReboot : C.poweroff2, async () => {
        if (!vm.running) notReached(`the guest already stopped (qemu exit ${vm.exitCode})`);
        const r = up ? await sshRun(target, 'sudo -n systemctl poweroff', 30) : { code: 1 };
        try {
          await vm.waitExit(r.code === 0 || r.code === 255 ? 180_000 : 5_000);
        } catch {
          await vm.powerButton();
          await vm.waitExit(180_000);
        }
        expect(vm.exitCode === 0, `qemu exit ${vm.exitCode}`);
        off = true;
        return `off after ${vm.elapsed().toFixed(0)}s`;
      }));
    } finally {
      await vm.close();
    }
    return off;
  };
  const off2 = await later(2, true, cleanOff1);
  const off3 = await later(3, false, off2);
  if (osRel && osSource) {
    const inventory = path.join(fleetDir, 'inventory.yaml');
    await osUpdateScenario(checks, {
      image: built.image, work, mac, sshPort, target, timeoutMs: BOOT_TIMEOUT, source: osSource, inventory, releases: osRel, out: built.out, device: DEVICE, status,
      edgeforge: (a) => edgeforge(a, edgeLog),
      forwards: () => [
        { guestIp: TANG_GUEST.ip, guestPort: TANG_GUEST.port, hostPort: tang!.port, perConnection: true },
        { guestIp: GIT_GUEST.ip, guestPort: GIT_GUEST.port, hostPort: git!.port, perConnection: true },
        { guestIp: OS_GUEST.ip, guestPort: OS_GUEST.port, hostPort: osSource!.port, perConnection: true },
        ...(status ? [{ guestIp: STATUS_GUEST_IP, guestPort: status.port, hostPort: status.port, perConnection: true }] : []),
      ],
      statusCli: () => edgeforge(['status', '--json', '-i', inventory, '-o', built!.out, '--password-file', path.join(status!.dir, ADMIN_PASSWORD_FILE), '--site', 'kr-south/changwon-plant-2', '--broker', `mqtts://127.0.0.1:${status!.port}`], edgeLog),
    }, off3);
  } else checks.skipRest('os', 'no OS releases (see the bundles check)');
  await permanentFailureBoot(checks, fb, async (to) => {
    if ((await edgeforge(['image', 'materialize', '-o', built!.out, '--device', DEVICE, '--to', to], edgeLog)).code !== 0) return false;
    await fs.truncate(to, (await fs.stat(to)).size + CARD_EXTRA);
    return true;
  });
  await tang?.close();
  await git?.close();
  await osSource?.close();
  await closeStatus(status);
  await closeOci(oci);
  return finish(checks);

  function finish(c: Checks): number {
    // a passing run's work dir (~4 GB of images) is removed unless asked for; a failing one is kept to inspect
    const remove = c.ok && !process.env.EDGEFORGE_E2E_WORK && process.env.EDGEFORGE_E2E_KEEP !== '1';
    if (remove) rmSync(work, { recursive: true, force: true });
    const where = remove ? `work dir ${work} removed (every check passed; EDGEFORGE_E2E_KEEP=1 keeps it)` : `work dir: ${work}`;
    process.stderr.write(`\n${c.summary()}\n\n${stageSummary()}\n\n${where}\n`);
    return c.ok ? 0 : 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`e2e harness error: ${err instanceof Error ? err.stack : String(err)}\n${stageSummary()}\n`);
    process.exit(2);
  },
);
