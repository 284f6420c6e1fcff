// The data volume, made by the very shell functions the first-boot program runs, with the real tools:
// sfdisk on disk images, cryptsetup luksFormat (capped argon2id, checked in the LUKS2 header), clevis luks
// bind to a tang server on loopback (and to a software TPM), the unlock checked while tang answers and
// refused once it is gone, the escrowed recovery passphrase opening its keyslot after an admin decrypts it.
//
// This machine has loop devices but no device-mapper: `cryptsetup open`, mkfs on the mapping and the
// mounts cannot run here. Up to that point everything runs for real; from there the sys wrapper logs the
// commands (and proves the clevis slot opens with --test-passphrase where the program would unlock).
// The real unlock and mount are the qemu end-to-end test's job (its guest kernel has device-mapper).
import { requireTools, succeeded, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import type { Fleet, ResolvedDevice } from '../../scripts/inventory/fleet.ts';
import { encryptionPlan } from '../../scripts/render/encryption/plan.ts';
import { encryptionBundleFiles, encryptionHeader } from '../../scripts/render/encryption/compose.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { SHELL_CORE, SoftTpm, TangServer, functionsPrelude, luksDump, sh, sysWrapper, tmp, withTang, writeBundle } from './helpers.ts';
const HAVE_TOOLS = requireTools(['clevis', 'cryptsetup', 'curl', 'jose', 'mkfs.ext4', 'sfdisk', 'socat', 'tangd', 'tangd-keygen'], 'test/encryption/luks.test.ts');

const SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/render/encryption/sh');
const RECOVERY = '7K2QF-AB3CD-EFGH0-JKMNP-QRSTV-WXYZ1-23456-789AB';

let fleet: Fleet;
let dir: string;
let tang: TangServer;
const dev = (id: string): ResolvedDevice => fleet.devices.find((d) => d.id === id)!;
const canTpm = requireTools(['swtpm', 'tpm2_getrandom', 'clevis-encrypt-tpm2'], 'tang + TPM2 with a software TPM');
const hasAdiantum = existsSync('/proc/crypto') && /adiantum/.test(readFileSync('/proc/crypto', 'utf8'));

beforeAll(async () => {
  fleet = await loadInventoryFile(EXAMPLE);
  dir = tmp('luks');
  tang = new TangServer(dir);
  await tang.start();
}, 30_000);
afterAll(async () => {
  await tang?.stop();
});

/** source the functions the way the encryption program does: a header (a plan's, or none), the shell core */
function functions(header: string, body: string, env: Record<string, string> = {}) {
  const script = [header, header ? `. ${SHELL_CORE}` : functionsPrelude(), `. ${SH}/volume.sh`, `. ${SH}/boot.sh`, body].join('\n');
  return sh(script, env);
}

function testPass(vol: string, slot: number, env: Record<string, string> = {}) {
  return sh(`clevis luks pass -d '${vol}' -s ${slot} | cryptsetup open --test-passphrase --key-slot ${slot} --key-file - '${vol}'`, env);
}

describe.runIf(HAVE_TOOLS)('the data partition in the free space after root', () => {
  it('appends a 1 MiB-aligned partition after root on an MBR (Raspberry Pi) image, and refuses when no space is left', async () => {
    const img = path.join(dir, 'mbr.img');
    spawnSync('truncate', ['-s', '64M', img]);
    expect(spawnSync(tool('sfdisk'), ['-q', img], { input: 'label: dos\n,16M,c\n,24M,L\n' }).status).toBe(0);
    const r = await functions('', `edv_append_partition '${img}' 2 16`, { EDGEFORGE_ROOT: path.join(dir, 'r-mbr') });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('3');
    const dump = succeeded(spawnSync(tool('sfdisk'), ['-d', img], { encoding: 'utf8' }), 'sfdisk').stdout;
    // p2 ends at 34816 + 49152 = 83968 (already aligned); p3 takes the rest of the 131072 sectors
    expect(dump).toMatch(/mbr\.img3 : start= +83968, size= +47104, type=83/);
    const again = await functions('', `edv_append_partition '${img}' 2 16`, { EDGEFORGE_ROOT: path.join(dir, 'r-mbr') });
    expect(again.status).toBe(78); // permanent: the card does not grow
    expect(again.stderr).toMatch(/only 0 MiB free after the root partition .*need 16 MiB.*growpart off.*storage\.dataPartition/);
  });

  it('on a GPT (UEFI) image written to a larger disk: moves the backup GPT to the end and names the partition', async () => {
    const img = path.join(dir, 'gpt.img');
    spawnSync('truncate', ['-s', '48M', img]);
    expect(spawnSync(tool('sfdisk'), ['-q', img], { input: 'label: gpt\n,16M,U\n,16M,L\n' }).status).toBe(0);
    spawnSync('truncate', ['-s', '96M', img]); // the card is bigger than the image
    const r = await functions('', `edv_append_partition '${img}' 2 32`, { EDGEFORGE_ROOT: path.join(dir, 'r-gpt') });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('3');
    const dump = succeeded(spawnSync(tool('sfdisk'), ['-d', img], { encoding: 'utf8' }), 'sfdisk').stdout;
    expect(dump).toMatch(/last-lba: 196574/); // 96 MiB = 196608 sectors, minus the 33-sector backup GPT, minus 1
    const p3 = dump.split('\n').find((l) => l.startsWith(`${img}3`))!;
    // whole MiB (126976 sectors), not up to the last usable sector (128991): LUKS2 with 4 KiB sectors needs an aligned size
    expect(p3).toMatch(/start= +67584, size= +126976, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4/);
    expect(p3).toContain('name="edgeforge-data"');
    expect(spawnSync(tool('sfdisk'), ['--verify', img], { encoding: 'utf8' }).status).toBe(0);
  });
});

describe.runIf(HAVE_TOOLS)('the encrypt_data_volume step on a file-backed volume (tang)', () => {
  let root: string;
  let vol: string;
  let wrapper: { path: string; calls: string };
  let run: () => ReturnType<typeof sh>;

  beforeAll(() => {
    root = path.join(dir, 'root');
    vol = path.join(dir, 'data.img');
    spawnSync('truncate', ['-s', '40M', vol]);
    const d = withTang(dev('changwon2-server'), [tang], 'tang', 1);
    const plan = encryptionPlan(d, { [tang.url]: tang.advertisement() });
    const bundle = writeBundle(root, encryptionBundleFiles(d, plan).files);
    mkdirSync(path.join(bundle, 'secrets'), { recursive: true });
    writeFileSync(path.join(bundle, 'secrets/luks-recovery'), RECOVERY + '\n', { mode: 0o600 }); // as the renderer writes it
    // a device provisioned before: K3s data already on the plaintext root
    mkdirSync(path.join(root, 'var/lib/rancher/k3s/server'), { recursive: true });
    writeFileSync(path.join(root, 'var/lib/rancher/k3s/server/token'), 'old\n');
    wrapper = sysWrapper(dir);
    run = () => sh(`sh ${bundle}/encryption/encrypt-data-volume.sh`, { EDGEFORGE_ROOT: root, EDGEFORGE_SYS: wrapper.path, EDV_DATA_PARTITION: vol });
  });

  it('formats LUKS2 with the profile cipher and the capped argon2id cost, binds tang, installs the boot unlock', async () => {
    const r = await run();
    expect(r.status, r.stderr).toBe(0);
    const dump = luksDump(vol);
    expect(dump).toMatch(/Version:\s+2/);
    expect(dump).toMatch(/Label:\s+edgeforge-data/);
    expect(dump).toMatch(/cipher:\s+aes-xts-plain64/);
    expect(dump).toMatch(/sector:\s+4096 \[bytes\]/);
    const slot0 = dump.split(/\n\s+0: luks2/)[1].split(/\n\s+1: luks2/)[0];
    expect(slot0).toMatch(/Key:\s+512 bits/);
    expect(slot0).toMatch(/PBKDF:\s+argon2id/);
    expect(slot0).toMatch(/Time cost:\s+4\n/);
    const mem = Number(/Memory:\s+(\d+)/.exec(slot0)![1]);
    expect(mem).toBeLessThanOrEqual(262144);
    expect(mem).toBe(262144); // exactly the cap: no benchmark lowered or raised it
    expect(dump).toMatch(/Tokens:\n\s+0: clevis\n\s+Keyslot:\s+1/);
    const list = succeeded(spawnSync(tool('clevis'), ['luks', 'list', '-d', vol], { encoding: 'utf8' }), 'clevis').stdout;
    expect(list).toMatch(new RegExp(`^1: tang '\\{"url":"${tang.url.replace(/\./g, '\\.')}"`));

    const calls = readFileSync(wrapper.calls, 'utf8');
    expect(calls).toContain(
      `cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --pbkdf argon2id --pbkdf-memory 262144 --pbkdf-parallel 4 --pbkdf-force-iterations 4 --label edgeforge-data --key-slot 0`,
    );
    expect(calls).toContain(`clevis luks unlock -d ${vol} -n edgeforge-data`);
    expect(calls).toContain(`mkfs.ext4 -q -m 1 -L edgeforge-fs ${root}/dev/mapper/edgeforge-data`);
    expect(calls).toContain(`mount -t ext4 -o noatime ${root}/dev/mapper/edgeforge-data ${root}/var/lib/edgeforge-data`);
    expect(calls).toContain(`mount --bind ${root}/var/lib/edgeforge-data/rancher ${root}/var/lib/rancher`);
    expect(calls).toContain(`mount --bind ${root}/var/lib/edgeforge-data/edgeforge-secrets ${root}/var/lib/edgeforge/secrets`);
    expect(calls).toContain('systemctl enable edgeforge-data-unlock.service');

    const uuid = succeeded(spawnSync(tool('cryptsetup'), ['luksUUID', vol], { encoding: 'utf8' }), 'cryptsetup').stdout.trim();
    // crypttab only documents the volume: a live entry would make systemd-cryptsetup prompt on the console
    // whenever the mount pulls the mapper device in (tang down), so every line of the block is a comment
    const crypttab = readFileSync(path.join(root, 'etc/crypttab'), 'utf8');
    expect(crypttab).toContain(`# edgeforge-data UUID=${uuid} none luks  (opened by edgeforge-unlock-data`);
    expect(crypttab).toContain(`cryptsetup open /dev/disk/by-uuid/${uuid} edgeforge-data`);
    expect(crypttab.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual([]);
    const fstab = readFileSync(path.join(root, 'etc/fstab'), 'utf8');
    expect(fstab).toContain('/dev/mapper/edgeforge-data /var/lib/edgeforge-data ext4 defaults,noatime,nofail,x-systemd.requires=edgeforge-data-unlock.service,x-systemd.device-timeout=0 0 2');
    expect(fstab).toContain('/var/lib/edgeforge-data/rancher /var/lib/rancher none bind,nofail,x-systemd.requires-mounts-for=/var/lib/edgeforge-data 0 0');
    expect(readFileSync(path.join(root, 'etc/edgeforge/data-volume.conf'), 'utf8')).toBe(`EDV_UUID=${uuid}\nEDV_NAME=edgeforge-data\nEDV_DEVICE_ID=changwon2-server\n`);
    expect(statSync(path.join(root, 'usr/local/sbin/edgeforge-unlock-data')).mode & 0o777).toBe(0o755);
    for (const svc of ['k3s', 'k3s-agent']) {
      expect(readFileSync(path.join(root, `etc/systemd/system/${svc}.service.d/20-edgeforge-data-volume.conf`), 'utf8')).toContain('RequiresMountsFor=/var/lib/rancher /var/lib/edgeforge/secrets');
    }
    // what was on the plaintext root moved onto the volume
    expect(readFileSync(path.join(root, 'var/lib/edgeforge-data/rancher/k3s/server/token'), 'utf8')).toBe('old\n');
    expect(readdirSync(path.join(root, 'var/lib/rancher'))).toEqual([]);
    // the trimmed key file is gone; the state is recorded
    expect(existsSync(path.join(root, 'run/edgeforge/luks-recovery.key'))).toBe(false);
    expect(readFileSync(path.join(root, 'var/lib/edgeforge/data-volume'), 'utf8')).toContain(`uuid=${uuid}\ncipher=aes-xts-plain64\npin=tang`);
  }, 300_000);

  it('is safe to run again: no second format, no second binding, one fstab block', async () => {
    const before = readFileSync(wrapper.calls, 'utf8').length;
    const uuid = succeeded(spawnSync(tool('cryptsetup'), ['luksUUID', vol], { encoding: 'utf8' }), 'cryptsetup').stdout.trim();
    const r = await run();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/already bound: 1: tang/);
    const calls = readFileSync(wrapper.calls, 'utf8').slice(before);
    expect(calls).not.toContain('luksFormat');
    expect(calls).not.toContain('clevis luks bind');
    expect(calls).not.toContain('daemon-reload'); // nothing changed on disk
    expect(succeeded(spawnSync(tool('cryptsetup'), ['luksUUID', vol], { encoding: 'utf8' }), 'cryptsetup').stdout.trim()).toBe(uuid);
    expect(readFileSync(path.join(root, 'etc/fstab'), 'utf8').match(/edgeforge data-volume begin/g)).toHaveLength(1);
  }, 300_000);

  it('refuses to format over a filesystem it did not make', async () => {
    const other = path.join(dir, 'someones.img');
    spawnSync('truncate', ['-s', '8M', other]);
    expect(spawnSync(tool('mkfs.ext4'), ['-q', '-F', other]).status).toBe(0);
    const r2 = path.join(dir, 'root-foreign');
    const d = withTang(dev('changwon2-server'), [tang], 'tang', 1);
    const bundle = writeBundle(r2, encryptionBundleFiles(d, encryptionPlan(d)).files);
    mkdirSync(path.join(bundle, 'secrets'));
    writeFileSync(path.join(bundle, 'secrets/luks-recovery'), RECOVERY);
    const r = await sh(`sh ${bundle}/encryption/encrypt-data-volume.sh`, { EDGEFORGE_ROOT: r2, EDGEFORGE_SYS: wrapper.path, EDV_DATA_PARTITION: other });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/holds a ext4 filesystem\/signature: edgeforge will not format over existing data.*wipefs -a/);
    expect(spawnSync(tool('cryptsetup'), ['isLuks', other]).status).not.toBe(0);
  }, 60_000);

  it('the tang slot unlocks while tang answers and not when it is gone (the stolen device)', async () => {
    expect((await testPass(vol, 1)).status).toBe(0);
    const port = tang.port;
    await tang.stop();
    try {
      const stolen = await testPass(vol, 1);
      expect(stolen.status).not.toBe(0);
      expect(stolen.stderr).toMatch(/Error communicating with server|Failed to/);
      // the boot unlock program in degraded mode: retries, reports, gives up only when told to
      const conf = path.join(dir, 'data-volume.conf');
      writeFileSync(conf, `EDV_UUID=unused\nEDV_NAME=edgeforge-data\nEDV_DEVICE_ID=changwon2-server\nEDV_DEV=${vol}\n`);
      const status = path.join(dir, 'run/data-volume.status');
      const env = { EDV_CONF: conf, EDV_STATUS: status, EDV_BACKOFF_FIRST: '1', EDV_BACKOFF_MAX: '2' };
      const prog = path.join(root, 'usr/local/sbin/edgeforge-unlock-data');
      const down = await sh(`'${prog}' --check --attempts 2`, env);
      expect(down.status).toBe(1);
      expect(down.stderr).toMatch(/attempt 1: cannot unlock .*Degraded mode: K3s waits; retrying in [12]s/);
      expect(down.stderr).toMatch(/gave up after 2 attempt\(s\)/);
      expect(readFileSync(status, 'utf8')).toMatch(/^locked since \S+; attempt 2 failed; gave up.*edgeforge keys recover changwon2-server/);
      // tang comes back while the program waits: it unlocks on a later attempt
      rmSync(status, { force: true });
      const child = spawn('dash', [prog, '--check', '--attempts', '20'], { env: { ...process.env, ...env } });
      let err = '';
      child.stderr.on('data', (b) => (err += b));
      const exited = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
      // wait until an attempt has failed (the status file says so), then bring tang back
      for (let i = 0; i < 600 && !existsSync(status); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(status)).toBe(true);
      await tang.start(port);
      expect(await exited, err).toBe(0);
      expect(err).toMatch(/ok: automatic unlock of .* works now \(attempt ([2-9]|1\d)\)/);
      expect(existsSync(status)).toBe(false);
    } finally {
      if (!tang.port || spawnSync(tool('curl'), ['-sf', '-o', '/dev/null', `${tang.url}/adv`]).status !== 0) await tang.start(port);
    }
  }, 300_000);

  it('the recovery passphrase, escrowed OpenPGP-encrypted to an admin, opens its own keyslot after decryption', async () => {
    // the keys stage escrows it to the admin recipients; here a test admin key does the same
    const { privateKey, publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'Test Admin', email: 'admin@example.test' }], format: 'object' });
    const escrowed = await openpgp.encrypt({ message: await openpgp.createMessage({ text: RECOVERY }), encryptionKeys: publicKey });
    expect(escrowed).not.toContain(RECOVERY);
    const { data } = await openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: escrowed as string }), decryptionKeys: privateKey });
    // what an admin does at the console: cryptsetup open ... and types it (here: --test-passphrase)
    const open = await sh(`cryptsetup open --test-passphrase --key-slot 0 '${vol}'`, {}, `${data}\n`);
    expect(open.status, open.stderr).toBe(0);
    const wrong = await sh(`cryptsetup open --test-passphrase --key-slot 0 '${vol}'`, {}, `${RECOVERY.replace('7K2QF', '7K2QG')}\n`);
    expect(wrong.status).not.toBe(0);
  }, 300_000);
});

describe.skipIf(!hasAdiantum || !HAVE_TOOLS)('Adiantum header (kernels with the adiantum crypto module)', () => {
  it('formats xchacha12,aes-adiantum-plain64 with 4 KiB sectors for boards without AES instructions', async () => {
    const d = dev('ulsan1-line1-001');
    const plan = encryptionPlan(d);
    const vol = path.join(dir, 'adiantum.img');
    spawnSync('truncate', ['-s', '40M', vol]);
    writeFileSync(path.join(dir, 'rk'), RECOVERY);
    const r = await functions(encryptionHeader(d, plan), `edv_luks_format '${vol}' '${dir}/rk'`, { EDGEFORGE_ROOT: path.join(dir, 'r-adi') });
    expect(r.status, r.stderr).toBe(0);
    const dump = luksDump(vol);
    expect(dump).toMatch(/cipher:\s+xchacha12,aes-adiantum-plain64/);
    expect(dump).toMatch(/sector:\s+4096/);
    expect(dump).toMatch(/Memory:\s+262144/);
  }, 300_000);
});

describe.skipIf(!canTpm || !HAVE_TOOLS)('tang + TPM2 (clevis sss, threshold 2) with a software TPM', () => {
  let tpm: SoftTpm;
  beforeAll(async () => {
    tpm = new SoftTpm(dir);
    await tpm.start();
  }, 30_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  it('binds both pins; unlocks only while both the TPM and tang answer', async () => {
    const d = withTang(dev('changwon2-server'), [tang]); // tang+tpm2, threshold 2 in the example inventory
    const plan = encryptionPlan(d, { [tang.url]: tang.advertisement() });
    expect(plan.clevis?.pin).toBe('sss');
    const r0 = path.join(dir, 'root-tpm');
    const bundle = writeBundle(r0, encryptionBundleFiles(d, plan).files);
    const vol = path.join(dir, 'tpm.img');
    spawnSync('truncate', ['-s', '40M', vol]);
    writeFileSync(path.join(dir, 'rk2'), RECOVERY);
    const env = { EDGEFORGE_ROOT: r0, TPM2TOOLS_TCTI: tpm.tcti };
    const r = await functions(encryptionHeader(d, plan), `edv_luks_format '${vol}' '${dir}/rk2' && edv_clevis_bind '${vol}' '${dir}/rk2' sss '${bundle}/encryption/clevis-config.json'`, env);
    expect(r.status, r.stderr).toBe(0);
    const list = succeeded(spawnSync(tool('clevis'), ['luks', 'list', '-d', vol], { encoding: 'utf8' }), 'clevis').stdout;
    expect(list).toMatch(/^1: sss '\{"t":2,"pins":\{"tang":\[\{"url":"http:\/\/127\.0\.0\.1:\d+"\}\],"tpm2":\[\{"hash":"sha256","key":"ecc","pcr_bank":"sha256","pcr_ids":"7"\}\]\}\}'/);
    expect((await testPass(vol, 1, { TPM2TOOLS_TCTI: tpm.tcti })).status).toBe(0);
    const port = tang.port;
    await tang.stop();
    try {
      expect((await testPass(vol, 1, { TPM2TOOLS_TCTI: tpm.tcti })).status).not.toBe(0); // the TPM alone is not enough
    } finally {
      await tang.start(port);
    }
  }, 300_000);
});
