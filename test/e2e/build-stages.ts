// The build stages of the boot test: the fixtures on the host, `edgeforge build --base-image` for the device,
// the fleet's GitOps tree on the Git stand-in, the device's image materialized, and the image's partitions.
import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { expect } from '../../scripts/e2e/checks.ts';
import { FatReader, partitions } from '../../scripts/e2e/disk-read.ts';
import { makeTestFleet, DEVICE } from '../../scripts/e2e/fleet.ts';
import { pinFluxImageArchives } from '../../scripts/e2e/airgap.ts';
import { makeFluxStandin, makeK3sStandin } from '../../scripts/e2e/k3s-standin.ts';
import { log, stage } from '../../scripts/e2e/stage.ts';
import { fetchAdv, startTang } from '../../scripts/e2e/tang.ts';
import { prepareStatus, startStatusBroker } from '../../scripts/e2e/status.ts';
import { startGit } from '../../scripts/e2e/git.ts';
import { publishGitopsTree } from '../../scripts/e2e/day2.ts';
import { prepareOci, startOci } from '../../scripts/e2e/oci.ts';
import { OS_CHECKS, RELEASES, setOsInventory, shareOsKey } from '../../scripts/e2e/os-update.ts';
import { startOsSource } from '../../scripts/e2e/os-source.ts';
import { parseAllDocuments } from 'yaml';
import { C, CANARY_BUNDLE, CANARY_DIR, CANARY_VERSION, CARD_EXTRA, edgeforge, type Built, type Run } from './context.ts';

/** The build stages in order; an error stops them (logged) and leaves run.built unset or as far as it got. */
export async function buildStages(run: Run): Promise<void> {
  try {
    await prepareFleet(run);
    await buildFleet(run);
    // day 2: the fleet's GitOps tree, as `edgeforge gitops` writes it, is what the stand-in serves
    if (run.built && run.git) await publishDay2(run);
    if (run.built) await materializeImage(run, run.built);
    if (run.built) await imageChecks(run, run.built);
  } catch (err) {
    log(`build stage error: ${(err as Error).stack}`);
  }
}

/** tang and the Git stand-in on the host, the K3s and Flux stand-ins, the test inventory; fleet status, OCI and the OS releases prepared */
async function prepareFleet(run: Run): Promise<void> {
  const { checks, work, fleetDir, sshKey, tangDir } = run;
  await stage('fleet: fixtures (tang, stand-ins, test inventory)', async () => {
    await fs.rm(fleetDir, { recursive: true, force: true });
    await fs.mkdir(fleetDir, { recursive: true });
    if (!existsSync(sshKey)) await $`ssh-keygen -q -t ed25519 -N ${''} -C edgeforge-e2e -f ${sshKey}`;
    run.tang = await startTang(tangDir);
    run.git = await startGit(path.join(work, 'git'));
    const advFile = path.join(fleetDir, 'tang.adv.jws');
    await fs.writeFile(advFile, await fetchAdv(run.tang.port));
    const standin = await makeK3sStandin(path.join(fleetDir, 'bundles/k3s'));
    const canary = await makeK3sStandin(path.join(fleetDir, CANARY_BUNDLE), CANARY_VERSION);
    const flux = await makeFluxStandin(path.join(fleetDir, 'bundles/flux'));
    await makeTestFleet({
      dir: fleetDir,
      standin,
      canary,
      flux,
      tangThumbprint: run.tang.thumbprint,
      tangAdvertisementFile: advFile,
      sshPublicKey: await fs.readFile(`${sshKey}.pub`, 'utf8'),
      gitKnownHostsKey: run.git.hostKey,
    });
    // airgap: the Flux controllers' image archives, made here and pinned in the inventory (scripts/e2e/airgap.ts)
    run.fluxPins = await pinFluxImageArchives(path.join(fleetDir, 'inventory.yaml'), flux.file);
    run.status = await prepareStatus(work, path.join(fleetDir, 'inventory.yaml')).catch((err) => (log(`fleet status: ${(err as Error).message}`), undefined));
    run.oci = await prepareOci(work, path.join(fleetDir, 'inventory.yaml')).catch((err) => (log(`oci: ${(err as Error).message}`), undefined));
    // OS updates: the device's profile gets A/B cards, starting on the release made from the base
    const r = await stage('os: bundles of three releases', () => run.osReleases);
    await checks.run(OS_CHECKS.bundles, async () => {
      expect(r, 'the bundles could not be made (see the log)');
      for (const b of Object.values(r!.releases)) await $`rauc info ${`--keyring=${path.join(r!.keys, 'os-update/signing-cert.pem')}`} ${b.file}`;
      return Object.entries(r!.releases)
        .map(([v, b]) => `${v}: ${path.basename(b.file)} ${b.sha256.slice(0, 12)}`)
        .join('; ');
    });
    if (r) {
      run.osRel = r;
      await setOsInventory(path.join(fleetDir, 'inventory.yaml'), r, RELEASES.v1);
      await shareOsKey(r, path.join(fleetDir, 'keys'));
      run.osSource = await startOsSource(path.join(work, 'os-source'));
    }
  });
}

/** `edgeforge build --base-image` for the device; its deploy key onto the Git stand-in; the status broker and the OCI side started */
async function buildFleet(run: Run): Promise<void> {
  const { checks, work, fleetDir, edgeLog } = run;
  await stage('fleet: edgeforge build --base-image', async () => {
    await checks.run(C.build, async () => {
      const out = path.join(work, 'out');
      await fs.rm(out, { recursive: true, force: true });
      const r = await edgeforge(
        ['build', '-i', path.join(fleetDir, 'inventory.yaml'), '-o', out, '--keys', path.join(fleetDir, 'keys'), '--only', DEVICE, '--base-image', run.base.path, '--example-admin', '--json'],
        edgeLog,
      );
      let doc: { devices?: { id: string; status: string; phase: string; message: string }[] } = {};
      try {
        doc = JSON.parse(r.stdout);
      } catch {
        /* reported below */
      }
      const d = doc.devices?.find((x) => x.id === DEVICE);
      expect(
        r.code === 0 && d?.status === 'ok',
        `edgeforge build exit ${r.code}${d ? `, ${DEVICE}: ${d.status} at ${d.phase}: ${d.message}` : ''}; ${r.stderr.trim().split('\n').slice(-3).join(' | ')} (log ${edgeLog})`,
      );
      const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
      const dev = manifest.devices.find((x: { id: string }) => x.id === DEVICE);
      expect(
        dev?.artifacts?.some((a: { kind: string }) => a.kind === 'disk-delta'),
        'the manifest lists no disk-delta artifact for the device',
      );
      run.built = { out, dir: path.join(out, 'devices', DEVICE), image: path.join(work, `${DEVICE}.img`), manifest };
      // the operator's step: the device's deploy key goes onto the Git server (here: the stand-in)
      const secrets = await fs.readFile(path.join(run.built.dir, 'bundle/flux/edgeforge-flux-secrets.yaml'), 'utf8').catch(() => '');
      for (const d of parseAllDocuments(secrets)) {
        const o = d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
        if (o?.kind === 'Secret' && o.metadata?.name === 'flux-system' && o.data?.['identity.pub']) run.deployKeyPub = Buffer.from(o.data['identity.pub'], 'base64').toString('utf8').trim();
      }
      // sealed to tang, the Flux secret is not in the bundle: the keystore's public record has the key
      if (!run.deployKeyPub)
        run.deployKeyPub =
          (
            JSON.parse(await fs.readFile(path.join(fleetDir, 'keys/devices', DEVICE, 'public.json'), 'utf8').catch(() => '{}')) as { deployKey?: { publicKey?: string } }
          ).deployKey?.publicKey?.trim() ?? '';
      if (run.deployKeyPub) await run.git!.authorize(run.deployKeyPub);
      if (run.status)
        await startStatusBroker(run.status, { inventory: path.join(fleetDir, 'inventory.yaml'), keys: path.join(fleetDir, 'keys'), device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }).catch(
          (err) => log(`fleet status broker: ${(err as Error).message}`),
        );
      // the same device on the OCI transport: its build, the registry and issuer on the host, publish (scripts/e2e/oci.ts)
      if (run.oci)
        await startOci(run.oci, { keys: path.join(fleetDir, 'keys'), device: DEVICE, edgeforge: (a) => edgeforge(a, edgeLog) }).catch(
          (err) => ((run.oci!.error = (err as Error).message), log(`oci: ${(err as Error).message}`)),
        );
      return `${dev.artifacts.length} artifacts${run.deployKeyPub ? '; deploy key authorized on the Git stand-in' : ''}`;
    });
  });
}

/** day 2: the fleet's GitOps tree, as `edgeforge gitops` writes it, is what the stand-in serves */
async function publishDay2(run: Run): Promise<void> {
  const { work, fleetDir, edgeLog } = run;
  await stage('fleet: edgeforge gitops -> the Git stand-in', async () => {
    run.day2Published = await publishGitopsTree({
      git: run.git!,
      work,
      inventory: path.join(fleetDir, 'inventory.yaml'),
      keys: path.join(fleetDir, 'keys'),
      edgeforge: (a) => edgeforge(a, edgeLog),
    }).catch((err) => (log(`day 2: ${(err as Error).message}`), undefined));
  });
}

/** the device's image, materialized onto a larger card; on failure the run has no image (run.built unset) */
async function materializeImage(run: Run, built: Built): Promise<void> {
  const { checks, edgeLog } = run;
  await stage('image: materialize', async () => {
    const ok = await checks.run(C.materialize, async () => {
      const r = await edgeforge(['image', 'materialize', '-o', built.out, '--device', DEVICE, '--to', built.image], edgeLog);
      expect(r.code === 0, `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      // written to a larger card: the space after the image is the data volume's (an A/B image ends at its last slot)
      await fs.truncate(built.image, (await fs.stat(built.image)).size + CARD_EXTRA);
      const st = await fs.stat(built.image);
      return `${(st.size / 2 ** 20).toFixed(0)} MiB card, ${((st.blocks * 512) / 2 ** 20).toFixed(0)} MiB allocated`;
    });
    if (!ok) run.built = undefined;
  });
}

/** the image's CIDATA seed partition and its K3s airgap partition (both releases) */
async function imageChecks(run: Run, built: Built): Promise<void> {
  const { checks, fleetDir } = run;
  await checks.run(C.seedPart, async () => {
    const parts = await partitions(built.image);
    const cidata = parts.find((p) => p.name.toUpperCase() === 'CIDATA');
    expect(cidata, `no CIDATA partition (partitions: ${parts.map((p) => `${p.number}:${p.name}`).join(', ')})`);
    const fat = new FatReader(built.image, cidata!);
    const files = (await fat.ls()).map((f) => f.toLowerCase());
    expect(
      ['user-data', 'meta-data'].every((f) => files.some((x) => x.startsWith(f))),
      `CIDATA holds ${files.join(', ')}`,
    );
    const ud = (await fat.read('user-data'))!.toString('utf8');
    const mine = await fs.readFile(path.join(built.dir, 'seed/user-data'), 'utf8');
    expect(ud === mine, "CIDATA user-data differs from the build's seed/user-data");
    return `partition ${cidata!.number} at ${cidata!.start} bytes, ${cidata!.size} bytes`;
  });
  await checks.run(C.airgapPart, async () => {
    const parts = await partitions(built.image);
    const k3s = parts.find((p) => p.name === 'edgeforge-k3s');
    expect(k3s, `no edgeforge-k3s partition (partitions: ${parts.map((p) => `${p.number}:${p.name}`).join(', ')})`);
    // (mdir -b names a directory with a trailing /)
    const files = (await new FatReader(built.image, k3s!).ls()).map((f) => f.toLowerCase().replace(/\/$/, ''));
    expect(
      ['k3s-arm64', 'install.sh', CANARY_DIR].every((f) => files.includes(f)),
      `the partition holds ${files.join(', ')}`,
    );
    const bin = await new FatReader(built.image, k3s!).read('k3s-arm64');
    expect(bin?.equals(await fs.readFile(path.join(fleetDir, 'bundles/k3s/k3s-arm64'))), "k3s-arm64 on the partition is not the stable bundle's");
    // the rollout's canary release, in its own directory
    const cbin = await new FatReader(built.image, k3s!).read(`${CANARY_DIR}/k3s-arm64`);
    expect(cbin?.equals(await fs.readFile(path.join(fleetDir, CANARY_BUNDLE, 'k3s-arm64'))), `${CANARY_DIR}/k3s-arm64 on the partition is not the canary bundle's`);
    return `partition ${k3s!.number} (${(k3s!.size / 2 ** 20).toFixed(0)} MiB): ${files.join(', ')} (${CANARY_DIR}/: the canary release)`;
  });
}
