// The disk stage of the boot test: after boot 1's clean power-off, the image is read from the host (ext4, FAT,
// the LUKS header) and each check compares what the device wrote with what the build made. One function per check.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { expect, notReached } from '../../scripts/e2e/checks.ts';
import { Ext4Reader, FatReader, luksDump, partitions, type Part } from '../../scripts/e2e/disk-read.ts';
import { DEVICE } from '../../scripts/e2e/fleet.ts';
import { INSTALL_LOG, STANDIN_LOG } from '../../scripts/e2e/k3s-standin.ts';
import { STATE_DIR } from '../../scripts/device/layout.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import { deviceK3sVersion, ringOf } from '../../scripts/render/day2/rings.ts';
import { stage } from '../../scripts/e2e/stage.ts';
import { parseAllDocuments } from 'yaml';
import { C, CANARY_BUNDLE, CANARY_DIR, CANARY_VERSION, type Built, type Run } from './context.ts';
import type { Device } from './boot1.ts';

type Needle = { name: string; needle: string };

/** What every disk check reads: the image's partitions, its root file system, and what the first-boot program logged. */
interface Disk {
  run: Run;
  checks: Run['checks'];
  built: Built;
  fleetDir: string;
  sshKey: string;
  hostKey: string;
  live: Record<string, string>;
  /** boot 1's serial console */
  con: string;
  tangRequestsBoot1Start: number;
  parts: Part[];
  rootPart?: Part;
  /** the root file system, or notReached when it cannot be read */
  need: () => Ext4Reader;
  steps: string[];
  fbLog: string;
  stepsDone: string[];
  /** set by the LUKS check */
  dataPart?: Part;
}

/** The disk, read after boot 1's power-off; `boot1` is what boot 1 left (a clean power-off, its console). */
export async function diskStage(run: Run, built: Built, dev: Device, boot1: { cleanOff1: boolean; con: string; tangRequestsBoot1Start: number }): Promise<void> {
  const { con } = boot1;
  const { live } = dev;
  await stage('disk: read after power-off', async () => {
    const noDisk = boot1.cleanOff1 ? '' : 'no clean power-off after boot 1, so the ext4 journal may hold unwritten changes';
    const parts = await partitions(built.image);
    const rootPart = parts.find((p) => p.number === run.base.root.number);
    const root = rootPart && !noDisk ? await Ext4Reader.open(built.image, rootPart) : undefined;
    const need = () => {
      if (!root) notReached(noDisk || 'no root partition');
      return root!;
    };
    try {
      const steps = await firstbootSteps(built);
      const fbLog = root ? ((await root.text('/var/log/edgeforge-firstboot.log')) ?? '') : (live.firstbootLog ?? '');
      const stepOk = (s: string) => new RegExp(`\\[${s}\\] ok\\b`).test(fbLog) || new RegExp(`edgeforge-firstboot\\[${s}\\]: ok\\b`).test(con);
      const stepsDone = steps.filter(stepOk);
      const d: Disk = {
        run,
        checks: run.checks,
        built,
        fleetDir: run.fleetDir,
        sshKey: run.sshKey,
        hostKey: dev.hostKey,
        live,
        con,
        tangRequestsBoot1Start: boot1.tangRequestsBoot1Start,
        parts,
        rootPart,
        need,
        steps,
        fbLog,
        stepsDone,
      };
      for (const check of [
        cloudInitRan,
        firstbootCompleted,
        hostnameIsId,
        usersAreInventorys,
        hostKeyIsPinned,
        dataVolumeIsLuks,
        dataVolumeWasOpen,
        k3sConfigInPlace,
        k3sAirgapInstall,
        k3sRingRelease,
        fluxManifestsInPlace,
      ])
        await check(d);
      const needles = await secretNeedles(built, root ? await root.text('/etc/ssh/ssh_host_ed25519_key') : null, run.fluxSecretsOnDevice);
      await seedErased(d, needles);
      await cachesErased(d, needles);
    } finally {
      await root?.close();
    }
  });
}

/** cloud-init ran the seed: its instance-id is the seed's, and it finished */
async function cloudInitRan(d: Disk): Promise<void> {
  const { checks, built, need } = d;
  await checks.run(C.cloudInit, async () => {
    const r = need();
    const want = /instance-id:\s*"?([^"\s]+)/.exec(await fs.readFile(path.join(built.dir, 'seed/meta-data'), 'utf8'))?.[1];
    const got = (await r.text('/var/lib/cloud/data/instance-id'))?.trim();
    expect(got && got === want, `cloud-init's instance-id is ${JSON.stringify(got)}, the seed's is ${want}`);
    expect(await r.exists('/var/lib/cloud/instance/boot-finished'), 'no /var/lib/cloud/instance/boot-finished');
    return `instance-id ${got}`;
  });
}

/** the first-boot program completed every step of the bundle's list */
async function firstbootCompleted(d: Disk): Promise<void> {
  const { checks, fbLog, con, steps, stepsDone } = d;
  await checks.run(C.firstboot, async () => {
    if (!fbLog && !/edgeforge-firstboot\[/.test(con)) notReached('the first-boot program left no log and printed nothing (did cloud-init run its runcmd?)');
    expect(steps.length > 0, 'cannot read the step list from bundle/firstboot.sh');
    const failed = /FAILED: ([^\n]*)/.exec(fbLog) ?? /edgeforge-firstboot\[(\w+)\]: FAILED: ([^\n]*)/.exec(con);
    const missing = steps.filter((s) => !stepsDone.includes(s));
    expect(
      missing.length === 0 && /\[end\] done|edgeforge-firstboot\[end\]: done/.test(fbLog + con),
      `steps done: ${stepsDone.join(' ') || 'none'}; not done: ${missing.join(' ')}${failed ? `; ${failed[0].slice(0, 400)}` : ''}`,
    );
    return `${steps.join(' → ')}`;
  });
}

/** the hostname on disk (and as seen live) is the device id */
async function hostnameIsId(d: Disk): Promise<void> {
  const { checks, need, live } = d;
  await checks.run(C.hostname, async () => {
    const h = (await need().text('/etc/hostname'))?.trim();
    expect(h === DEVICE, `/etc/hostname is ${JSON.stringify(h)}`);
    if (live.hostname) expect(live.hostname.trim() === DEVICE, `the running hostname was ${live.hostname}`);
    return h;
  });
}

/** the users and authorized keys are the inventory's, passwords locked */
async function usersAreInventorys(d: Disk): Promise<void> {
  const { checks, need, sshKey } = d;
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
      const pw =
        shadow
          .split('\n')
          .find((l) => l.startsWith(`${u}:`))
          ?.split(':')[1] ?? '';
      expect(/^[!*]/.test(pw), `${u}'s password is not locked`);
    }
    return `ops (home ${home}), key-only, root locked`;
  });
}

/** the SSH host key on disk is the pinned one, and the only one */
async function hostKeyIsPinned(d: Disk): Promise<void> {
  const { checks, need, hostKey } = d;
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
}

/** the data volume: a partition after the root, LUKS2, clevis token bound to our tang */
async function dataVolumeIsLuks(d: Disk): Promise<void> {
  const { checks, built, fbLog, con, stepsDone, parts, rootPart } = d;
  await checks.run(C.luks, async () => {
    const after = parts.filter((p) => p.start > (rootPart?.start ?? 0));
    if (!after.length) {
      const enc = fbLog.match(/\[encrypt_data_volume\][^\n]*/g)?.slice(-1)[0] ?? con.match(/edgeforge-firstboot\[encrypt_data_volume\][^\n]*/g)?.slice(-1)[0];
      if (!stepsDone.includes('encrypt_data_volume')) notReached(`no partition after the root, and the encrypt_data_volume step did not complete${enc ? `: ${enc.slice(0, 300)}` : ''}`);
      throw new Error('encrypt_data_volume completed but there is no partition after the root');
    }
    for (const p of after) {
      const dump = await luksDump(built.image, p);
      if (!dump) continue;
      d.dataPart = p;
      expect(/^Version:\s*2/m.test(dump), `partition ${p.number} is LUKS but not version 2`);
      expect(/clevis/.test(dump), `partition ${p.number}: no clevis token in the LUKS2 header`);
      return `partition ${p.number} (${(p.size / 2 ** 20).toFixed(0)} MiB): LUKS2 with a clevis token`;
    }
    throw new Error(`no LUKS header on the partition(s) after the root: ${after.map((p) => p.number).join(', ')}`);
  });
}

/** the data volume was open on boot 1, unlocked through tang */
async function dataVolumeWasOpen(d: Disk): Promise<void> {
  const { run, checks, live, tangRequestsBoot1Start } = d;
  await checks.run(C.unlocked, async () => {
    if (!d.dataPart) notReached('no data volume');
    const reqs = run.tang!.requests.slice(tangRequestsBoot1Start);
    const rec = reqs.filter((x) => x.startsWith('POST /rec/'));
    expect(live.crypt !== undefined, 'no live state (SSH failed), so the open mapping could not be seen');
    const open = live.crypt.split('\n\n')[0].trim();
    expect(open && !/No devices found/i.test(open), `no dm-crypt mapping was open on boot 1 (dmsetup: ${open || 'empty'})`);
    expect(rec.length > 0, `the volume was open but tang saw no recovery request (requests: ${reqs.join(', ') || 'none'}): it was not unlocked through tang`);
    return `mapping ${open.split(/\s+/)[0]} open; tang saw ${rec.length} recovery request(s)`;
  });
}

/** K3s's config.yaml is the rendered one, where K3s reads it */
async function k3sConfigInPlace(d: Disk): Promise<void> {
  const { checks, built, need, stepsDone } = d;
  await checks.run(C.k3sConfig, async () => {
    const r = need();
    const want = await fs.readFile(path.join(built.dir, 'bundle/k3s/config.yaml'));
    const got = await r.read('/etc/rancher/k3s/config.yaml');
    if (!got) {
      if (!stepsDone.includes('k3s')) notReached('the k3s step did not run');
      throw new Error('/etc/rancher/k3s/config.yaml missing');
    }
    expect(got.equals(want), "/etc/rancher/k3s/config.yaml differs from the build's k3s-config artifact");
    const st = await r.stat('/etc/rancher/k3s/config.yaml');
    expect(st && (st.mode & 0o077) === 0, `mode ${st?.mode.toString(8)}`);
    return `${want.length} bytes, mode ${st!.mode.toString(8)}`;
  });
}

/** K3s installed through the airgap path from the K3s partition and started with its config */
async function k3sAirgapInstall(d: Disk): Promise<void> {
  const { checks, built, need, fbLog, con, stepsDone, live, fleetDir } = d;
  await checks.run(C.k3sAirgap, async () => {
    const r = need();
    const inst = await r.text(INSTALL_LOG);
    if (!inst) {
      if (!stepsDone.includes('k3s'))
        notReached(`the k3s step did not complete${/\[k3s\][^\n]*FAILED[^\n]*/.exec(fbLog)?.[0] ? `: ${/\[k3s\][^\n]*FAILED[^\n]*/.exec(fbLog)![0].slice(0, 300)}` : ''}`);
      throw new Error(`the installer never ran (${INSTALL_LOG} missing)`);
    }
    expect(/INSTALL_K3S_SKIP_DOWNLOAD=true/.test(inst), 'install.sh ran without INSTALL_K3S_SKIP_DOWNLOAD=true');
    const fromPart = /reading the K3s airgap files from partition (\S+)/.exec(fbLog + con)?.[1];
    expect(fromPart, "the first-boot log does not say the airgap files came from the image's K3s partition");
    const bin = await r.read('/usr/local/bin/k3s');
    // the device's site is a canary site: its ring's bundle (k3s.install.canary)
    const want = await fs.readFile(path.join(fleetDir, CANARY_BUNDLE, 'k3s-arm64'));
    expect(bin?.equals(want), "/usr/local/bin/k3s is not its ring's bundle's binary");
    const imagesLive = /agent\/images\/k3s-airgap-images-arm64\.tar\.zst/.test(live.rancher ?? '');
    expect(imagesLive || (await r.exists('/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst')), 'images archive not in /var/lib/rancher/k3s/agent/images');
    const run = (await r.text(STANDIN_LOG)) ?? '';
    expect(/running server/.test(run), `K3s was not started as a server (stand-in log: ${run.trim().split('\n').slice(-2).join(' | ') || 'empty'})`);
    const cfgSha = /config \/etc\/rancher\/k3s\/config.yaml sha256 (\w+)/.exec(run)?.[1];
    const wantSha = (await $`sha256sum ${path.join(built.dir, 'bundle/k3s/config.yaml')}`).stdout.split(' ')[0];
    expect(cfgSha === wantSha, 'K3s started before its config was in place (or with another one)');
    return `airgap install from ${fromPart}, unit ${/enabled (\S+)/.exec(inst)?.[1] ?? '?'}, started with the rendered config${live.k3s ? ` (live: ${live.k3s.split('\n')[0]})` : ''}`;
  });
}

/** the canary-ring device installed its ring's release from its directory on the K3s partition */
async function k3sRingRelease(d: Disk): Promise<void> {
  const { checks, need, live, fleetDir } = d;
  await checks.run(C.k3sRing, async () => {
    const r = need();
    // what the inventory gives the device: its ring's version (the day-2 check finds its site's Plans at the same one)
    const fleet = await loadInventoryFile(path.join(fleetDir, 'inventory.yaml'), 'inventory.yaml');
    const d = fleet.active.find((x) => x.id === DEVICE)!;
    const want = deviceK3sVersion(d, fleet);
    expect(
      ringOf(d) === 'canary' && want === CANARY_VERSION && fleet.k3s.version !== want,
      `test fleet: ${DEVICE} is in the ${ringOf(d)} ring at ${want} (stable ${fleet.k3s.version}); the test needs a rollout with the device in the canary ring`,
    );
    const inst = (await r.text(INSTALL_LOG)) ?? '';
    if (!inst) notReached('the installer never ran (see the airgap install check)');
    expect(
      new RegExp(`INSTALL_K3S_VERSION=${want.replace(/[.+]/g, '\\$&')}\\n`).test(inst),
      `install.sh ran with ${/INSTALL_K3S_VERSION=\S*/.exec(inst)?.[0] ?? 'no INSTALL_K3S_VERSION'}, not ${want}`,
    );
    const recorded = ((await r.text(`${STATE_DIR}/k3s-installed`)) ?? '').trim();
    expect(recorded.startsWith(`${want} airgap `), `${STATE_DIR}/k3s-installed says ${JSON.stringify(recorded)}`);
    expect(new RegExp(`k3s version ${want.replace(/[.+]/g, '\\$&')} `).test(live.k3sVersion ?? ''), `/usr/local/bin/k3s --version on the device: ${JSON.stringify(live.k3sVersion ?? '(not read)')}`);
    const stable = await fs.readFile(path.join(fleetDir, 'bundles/k3s/k3s-arm64'));
    expect(!(await r.read('/usr/local/bin/k3s'))?.equals(stable), "/usr/local/bin/k3s is the stable release's binary");
    return `${DEVICE} (canary ring) runs ${want} from ${CANARY_DIR}/ on the K3s partition; the stable ring's ${fleet.k3s.version} is at the partition's root; recorded "${recorded}"`;
  });
}

/** the Flux bootstrap manifests are in K3s's auto-deploy directory as built */
async function fluxManifestsInPlace(d: Disk): Promise<void> {
  const { checks, built, need, stepsDone, live } = d;
  await checks.run(C.flux, async () => {
    const r = need();
    const arts = built.manifest.devices.find((d) => d.id === DEVICE)!.artifacts.filter((a) => a.kind === 'flux-bootstrap');
    const src = await fs.readdir(path.join(built.dir, 'bundle/flux')).catch(() => [] as string[]);
    const files = arts.length ? arts.map((a) => path.join(built.out, a.path)) : src.map((f) => path.join(built.dir, 'bundle/flux', f));
    expect(files.length > 0, 'the build made no Flux bootstrap manifests');
    const dir = '/var/lib/rancher/k3s/server/manifests';
    // on the encrypted data volume when it is mounted over /var/lib/rancher: read what SSH saw live
    const liveSums = new Map(
      (live.rancher ?? '')
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((x) => x.length === 2)
        .map(([h, f]) => [f.replace(/^\.\//, ''), h]),
    );
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
}

/** no secret is left in the seed partition */
async function seedErased(d: Disk, needles: Needle[]): Promise<void> {
  const { checks, built, stepsDone, parts } = d;
  await checks.run(C.seedErased, async () => {
    expect(needles.length > 0, 'the build has no secrets to look for');
    const cidata = parts.find((p) => p.name.toUpperCase() === 'CIDATA');
    expect(cidata, 'no CIDATA partition');
    const ud = (await new FatReader(built.image, cidata!).read('user-data'))?.toString('latin1') ?? '';
    const left = needles.filter((n) => ud.includes(n.needle)).map((n) => n.name);
    if (left.length && !stepsDone.includes('erase_secrets')) notReached(`the erase_secrets step did not run; the seed still holds ${left.join(', ')}`);
    expect(left.length === 0, `the seed partition's user-data still holds: ${left.join(', ')}`);
    return `user-data is now ${ud.length} bytes, none of ${needles.length} secrets (${needles.map((n) => n.name).join(', ')}) in it`;
  });
}

/** no secret is left in cloud-init's caches, the bundle or the logs */
async function cachesErased(d: Disk, needles: Needle[]): Promise<void> {
  const { checks, need, stepsDone } = d;
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
    const lines = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length >= 40 && !l.startsWith('-----') && !/^[#\w-]+:\s*[\w.-]*$/.test(l));
    if (lines.length) {
      const l = lines[Math.floor(lines.length / 2)];
      out.push({ name, needle: l.slice(Math.floor(l.length / 2) - 20, Math.floor(l.length / 2) + 20) });
    } else if (text.trim().length >= 16) out.push({ name, needle: text.trim() });
  };
  const b = path.join(built.dir, 'bundle');
  for (const f of await fs.readdir(path.join(b, 'secrets')).catch(() => [] as string[])) chunk(`secrets/${f}`, await fs.readFile(path.join(b, 'secrets', f), 'utf8'));
  for (const f of await fs.readdir(b).catch(() => [] as string[])) if (/sealed|\.jwe$/.test(f)) chunk(f, await fs.readFile(path.join(b, f), 'utf8'));
  for (const f of await fs.readdir(path.join(b, 'flux')).catch(() => [] as string[])) if (/secret/.test(f)) chunk(`flux/${f}`, await fs.readFile(path.join(b, 'flux', f), 'utf8'));
  if (hostPrivateKey) chunk("the device's private host key", hostPrivateKey);
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
