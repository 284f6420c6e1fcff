// Per-device rendering against the real tools: cloud-init's schema and network parser, shellcheck,
// nft's own checker, and K3s's flag lists. Every device of the example fleet is checked.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { exampleFleet, fixedSecrets, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { k3sFlags } from '../helpers.ts';
import { renderDevice, bundleHash, type DeviceStage } from '../../scripts/render/device.ts';
import { isOneTimeSecret } from '../../scripts/render/device-stage.ts';
import { encryptionStage } from '../../scripts/render/encryption/encryption-stage.ts';
import { sha256Hex } from '../../scripts/util/hash.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { textFile, type RenderedFile } from '../../scripts/render/files.ts';
import { readFileSync } from 'node:fs';
import { EXAMPLE, withFlux } from '../../scripts/testkit/fixed-secrets.ts';
import { prepareFlux } from '../../scripts/pipeline/flux.ts';
const HAVE_TOOLS = requireTools(['cloud-init', 'nft', 'python3', 'shellcheck', ...(process.getuid?.() === 0 ? [] : ['unshare'])], 'test/render/render.test.ts');

const run = promisify(execFile);
/** a tool's exit status and output, whether it succeeded or not (the checks assert the status) */
const checked = (p: Promise<{ stdout: string; stderr: string }>) =>
  p.then(
    (r) => ({ code: 0 as number | string, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number | string; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(e) }),
  );
let fleet: Fleet;
let rendered: Map<string, RenderedFile[]>;
let dir: string;
const text = (files: RenderedFile[], p: string) => {
  const f = files.find((x) => x.path === p);
  if (!f) throw new Error(`no ${p}`);
  return Buffer.from(f.bytes).toString('utf8');
};

beforeAll(async () => {
  fleet = await exampleFleet();
  rendered = new Map(fleet.active.map((d) => [d.id, renderDevice(fleet, d, fixedSecretsFor(d))]));
  dir = mkdtempSync(path.join(tmpdir(), 'ef-render-'));
  for (const [id, files] of rendered) {
    for (const f of files) {
      const p = path.join(dir, id, f.path);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, f.bytes, { mode: f.mode });
    }
  }
  return () => rmSync(dir, { recursive: true, force: true });
});

describe.runIf(HAVE_TOOLS)('NoCloud seed', () => {
  it('user-data of every example device passes `cloud-init schema`', async () => {
    expect(fleet.active.length).toBe(14);
    // two at a time: each is a Python start-up, and the machine is shared
    const queue = [...fleet.active];
    const worker = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const { stdout } = await run(tool('cloud-init'), ['schema', '--config-file', path.join(dir, d.id, 'seed/user-data')]);
        expect(stdout, d.id).toContain('Valid cloud-config');
      }
    };
    await Promise.all([worker(), worker()]);
  }, 300_000);

  it('cloud-init schema does reject a broken document (the check is real)', async () => {
    const bad = path.join(dir, 'bad-user-data');
    writeFileSync(bad, text(rendered.get('brno1-dock-001')!, 'seed/user-data').replace('ssh_pwauth: false', 'ssh_pwauth: {}'));
    await expect(run(tool('cloud-init'), ['schema', '--config-file', bad])).rejects.toThrow();
  });

  it('user-data: key-only users, no root, pinned host key, secrets 0600, runcmd starts the program', () => {
    for (const d of fleet.active) {
      const files = rendered.get(d.id)!;
      const ud = text(files, 'seed/user-data');
      expect(ud.startsWith('#cloud-config\n')).toBe(true);
      const doc = YAML.parse(ud, { version: '1.1' });
      const s = fixedSecretsFor(d);
      expect(doc.hostname).toBe(d.id);
      expect(doc.ssh_pwauth).toBe(false);
      expect(doc.disable_root).toBe(true);
      expect(doc.ssh_deletekeys).toBe(true);
      expect(doc.ssh_keys).toEqual({ ed25519_private: s.sshHostKey.privateKey, ed25519_public: s.sshHostKey.publicKey });
      expect(doc.users.map((u: { name: string }) => u.name)).toEqual(d.users.map((u) => u.name));
      for (const u of doc.users) expect(u.lock_passwd).toBe(true);
      // runcmd only enables and starts the first-boot service (written by write_files), which runs the program
      expect(doc.runcmd).toEqual([
        ['systemctl', 'daemon-reload'],
        ['systemctl', 'enable', 'edgeforge-firstboot.service'],
        ['systemctl', 'start', '--no-block', 'edgeforge-firstboot.service'],
      ]);
      const wf = new Map<string, { content: string; permissions: string }>(doc.write_files.map((w: { path: string }) => [w.path, w]));
      expect(wf.get('/etc/systemd/system/edgeforge-firstboot.service')!.content).toContain('ExecStart=/bin/sh /var/lib/edgeforge/bundle/firstboot.sh service\n');
      expect(wf.get('/etc/systemd/system/edgeforge-firstboot.service')!.content).toContain('RestartPreventExitStatus=78\n');
      expect(wf.get('/usr/local/sbin/edgeforge-firstboot')!.permissions).toBe('0755');
      expect(wf.get('/etc/sysctl.d/90-edgeforge-k3s.conf')!.content).toContain('vm.overcommit_memory = 1');
      // every bundle file travels in user-data with the same bytes; secrets 0600
      for (const f of files.filter((x) => x.path.startsWith('bundle/'))) {
        const w = wf.get('/var/lib/edgeforge/' + f.path)!;
        expect(w, f.path).toBeDefined();
        expect(w.content).toBe(Buffer.from(f.bytes).toString('utf8'));
        if (f.secret) expect(w.permissions).toBe('0600');
      }
      expect(wf.get('/var/lib/edgeforge/bundle/secrets/ssh_host_ed25519_key')!.permissions).toBe('0600');
      // user-data holds secrets: the artifact is secret and private
      const f = files.find((x) => x.path === 'seed/user-data')!;
      expect(f.secret).toBe(true);
      expect(f.mode).toBe(0o600);
    }
  });

  it("cloud-init's own YAML reader (PyYAML) gets every write_files content byte for byte", async () => {
    const py = `
import sys, yaml, os
bad = []
for dev in sys.argv[2:]:
    doc = yaml.safe_load(open(os.path.join(sys.argv[1], dev, 'seed/user-data')))
    for w in doc['write_files']:
        if not w['path'].startswith('/var/lib/edgeforge/bundle/'): continue
        local = os.path.join(sys.argv[1], dev, 'bundle', w['path'][len('/var/lib/edgeforge/bundle/'):])
        if open(local, encoding='utf-8', newline='').read() != w['content']: bad.append(dev + ':' + w['path'])
print('bad:' + ','.join(bad))`;
    const { stdout } = await run(tool('python3'), ['-c', py, dir, ...fleet.active.map((d) => d.id)]);
    expect(stdout.trim()).toBe('bad:');
  }, 30_000);

  it('network-config v2 is read by cloud-init: NIC matched by MAC, DHCP or static as the inventory says', async () => {
    const py = `
import sys, json, yaml
from cloudinit.net.network_state import parse_net_config_data
out = {}
for p in sys.argv[1:]:
    ns = parse_net_config_data(yaml.safe_load(open(p)))
    out[p.split('/')[-3]] = [{"name": i["name"], "mac": i["mac_address"], "subnets": i["subnets"]} for i in ns.iter_interfaces()]
print(json.dumps(out))`;
    const { stdout } = await run(tool('python3'), ['-c', py, ...fleet.active.map((d) => path.join(dir, d.id, 'seed/network-config'))]);
    const parsed = JSON.parse(stdout);
    for (const d of fleet.active) {
      const [nic] = parsed[d.id];
      expect(nic.mac).toBe(d.mac);
      expect(nic.name).toBe(d.network.interface);
      if (d.network.mode === 'dhcp') expect(nic.subnets[0].type).toBe('dhcp4');
      else {
        expect(nic.subnets[0].type).toBe('static');
        expect(`${nic.subnets[0].address}/${nic.subnets[0].prefix}`).toBe(d.network.address);
        expect(nic.subnets[0].routes[0].gateway).toBe(d.network.gateway);
        expect(nic.subnets[0].dns_nameservers).toEqual(d.network.dns);
      }
    }
  }, 30_000);

  it('meta-data: instance-id unique per device, local-hostname is the id', () => {
    const ids = new Set<string>();
    for (const d of fleet.active) {
      const md = YAML.parse(text(rendered.get(d.id)!, 'seed/meta-data'));
      expect(md['local-hostname']).toBe(d.id);
      expect(md['instance-id']).toMatch(new RegExp(`^${d.id}-[0-9a-f]{16}$`));
      ids.add(md['instance-id']);
    }
    expect(ids.size).toBe(fleet.active.length);
  });

  it('instance-id changes when the device content changes (config or key), and only then', async () => {
    const d = fleet.active.find((x) => x.id === 'brno1-dock-001')!;
    const iid = (files: RenderedFile[]) => YAML.parse(text(files, 'seed/meta-data'))['instance-id'];
    const base = iid(renderDevice(fleet, d, fixedSecretsFor(d)));
    expect(iid(renderDevice(fleet, d, fixedSecretsFor(d)))).toBe(base);
    // rotated host key
    expect(iid(renderDevice(fleet, d, { ...fixedSecretsFor(d), sshHostKey: fixedSecrets('other').sshHostKey }))).not.toBe(base);
    // inventory change for this device (another NTP server)
    const yaml = readFileSync(EXAMPLE, 'utf8').replace('notes: forklift charging bay', 'notes: forklift charging bay\n            ntp: [ntp2.acme.example]');
    const f2 = loadInventoryBytes(Buffer.from(yaml), 'example.yaml');
    const d3 = f2.active.find((x) => x.id === 'brno1-dock-003')!;
    const before = iid(
      renderDevice(
        fleet,
        fleet.active.find((x) => x.id === 'brno1-dock-003')!,
        fixedSecretsFor(d3),
      ),
    );
    expect(iid(renderDevice(f2, d3, fixedSecretsFor(d3)))).not.toBe(before);
    // ...and an untouched device of the changed inventory keeps its instance
    expect(
      iid(
        renderDevice(
          f2,
          f2.active.find((x) => x.id === 'brno1-dock-001')!,
          fixedSecretsFor(d),
        ),
      ),
    ).toBe(base);
  });
});

describe.runIf(HAVE_TOOLS)('K3s config', () => {
  it('every key of every rendered config is a real K3s flag (server vs agent lists)', () => {
    // the lists on file are the v1.31 line's (test/fixtures/k3s-flags/v1.31/); the inventory may pin a newer line
    // (k3s.version): its keys are checked against what K3s v1.31 accepts until that line's lists are added beside
    // them — then pass fleet.k3s.version here
    const server = k3sFlags('server', 'v1.31');
    const agent = k3sFlags('agent', 'v1.31');
    for (const d of fleet.active) {
      const cfg = YAML.parse(text(rendered.get(d.id)!, 'bundle/k3s/config.yaml'));
      const flags = d.cluster.kind === 'multi-node-agent' ? agent : server;
      for (const key of Object.keys(cfg)) expect(flags.has(key.replace(/\+$/, '')), `${d.id}: ${key}`).toBe(true);
    }
  });

  it('servers: SQLite single node, WireGuard flannel, secrets encryption, protect-kernel-defaults, tuned kubelet', () => {
    for (const d of fleet.active) {
      const cfg = YAML.parse(text(rendered.get(d.id)!, 'bundle/k3s/config.yaml'));
      expect(cfg['node-name']).toBe(d.id);
      expect(cfg['protect-kernel-defaults']).toBe(true);
      const evict = (cfg['kubelet-arg'] as string[]).find((a) => a.startsWith('eviction-hard='))!;
      expect(evict).toMatch(/memory\.available<\d+Mi/);
      expect(evict).toContain('nodefs.available');
      for (const k of ['eviction-soft=', 'system-reserved=', 'kube-reserved=', 'image-gc-high-threshold=', 'container-log-max-size=', 'container-log-max-files=', 'max-pods=']) {
        expect(
          (cfg['kubelet-arg'] as string[]).some((a) => a.startsWith(k)),
          `${d.id} ${k}`,
        ).toBe(true);
      }
      if (d.cluster.kind === 'multi-node-agent') {
        expect(cfg.server).toBe('https://10.30.1.10:6443');
        expect(cfg['token-file']).toBe('/var/lib/edgeforge/secrets/k3s-agent-token');
        expect(cfg['flannel-backend']).toBeUndefined();
      } else {
        expect(cfg['cluster-init']).toBeUndefined();
        expect(cfg['flannel-backend']).toBe('wireguard-native');
        expect(cfg['secrets-encryption']).toBe(true);
        expect(cfg['write-kubeconfig-mode']).toBe('0600');
        expect(cfg.disable).toEqual(['traefik', 'servicelb', 'metrics-server']);
      }
    }
  });

  it('registries.yaml exactly where the site has a mirror', () => {
    for (const d of fleet.active) {
      const f = rendered.get(d.id)!.find((x) => x.path === 'bundle/k3s/registries.yaml');
      expect(Boolean(f), d.id).toBe(Boolean(d.registryMirror));
      if (f) expect(YAML.parse(Buffer.from(f.bytes).toString()).mirrors['docker.io'].endpoint).toEqual(['https://registry.ulsan1.acme.example:5000']);
    }
  });

  it('tokens: servers get their own token, each agent its own bootstrap token; secret files are 0600', () => {
    const server = rendered.get('changwon2-server')!;
    const agent = rendered.get('changwon2-press-001')!;
    const agent2 = rendered.get('changwon2-press-002')!;
    const tok = text(agent, 'bundle/secrets/k3s-agent-token');
    expect(tok).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}\n$/);
    expect(tok).not.toBe(text(agent2, 'bundle/secrets/k3s-agent-token'));
    expect(tok).not.toBe(text(server, 'bundle/secrets/k3s-agent-token'));
    expect(text(server, 'bundle/secrets/k3s-token')).not.toContain(tok.trim());
    expect(agent.find((f) => f.path === 'bundle/secrets/k3s-token')).toBeUndefined();
    expect(rendered.get('brno1-dock-001')!.find((f) => f.path === 'bundle/secrets/k3s-agent-token')).toBeUndefined();
    for (const files of rendered.values()) for (const f of files.filter((x) => x.path.includes('/secrets/'))) expect([f.secret, f.mode]).toEqual([true, 0o600]);
  });
});

describe.runIf(HAVE_TOOLS)('first-boot program and system files', () => {
  it('every device program passes shellcheck (POSIX sh)', async () => {
    const files = fleet.active.map((d) => path.join(dir, d.id, 'bundle/firstboot.sh'));
    const r = await checked(run(tool('shellcheck'), ['--shell=sh', '--severity=style', ...files]));
    expect(r.stdout).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);

  it('every device firewall passes `nft -c`, touches only table inet edgeforge, and limits SSH to the management subnet', async () => {
    for (const d of fleet.active) {
      const rules = text(rendered.get(d.id)!, 'bundle/system/nftables.nft');
      expect(rules).not.toMatch(/flush ruleset/);
      expect(rules).toContain('policy drop;');
      expect(rules.match(/^table (\S+ \S+)/gm)!.every((l) => l === 'table inet edgeforge')).toBe(true);
      if (d.managementSubnet) expect(rules).toContain(`ip saddr ${d.managementSubnet} tcp dport 22 accept`);
      else expect(rules).not.toMatch(/dport 22\b/); // no management subnet, no ssh.allowFrom: SSH closed
    }
    // nft -c needs CAP_NET_ADMIN: a normal user gets it in a user + network namespace of its own
    const nftCheck = (f: string) => checked(process.getuid?.() === 0 ? run(tool('nft'), ['-c', '-f', f]) : run(tool('unshare'), ['-rn', tool('nft'), '-c', '-f', f]));
    for (const d of fleet.active) {
      const r = await nftCheck(path.join(dir, d.id, 'bundle/system/nftables.nft'));
      expect(r.code, `${d.id}: ${r.stderr}`).toBe(0);
    }
    writeFileSync(path.join(dir, 'bad.nft'), 'table inet edgeforge {\n chain input { type filter hook input priority filter; policy drop; tcp dport 22 acept\n }\n}\n');
    const bad = await nftCheck(path.join(dir, 'bad.nft'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/acept/);
  }, 30_000);

  it('SHA256SUMS lists every bundle file with its hash; the bundle hash is its sha256', () => {
    for (const files of rendered.values()) {
      const sums = text(files, 'bundle/SHA256SUMS');
      for (const f of files.filter((x) => x.path.startsWith('bundle/') && x.path !== 'bundle/SHA256SUMS')) {
        expect(sums).toContain(`${sha256Hex(f.bytes)}  ${f.path.slice(7)}\n`);
      }
      expect(bundleHash(files)).toBe(sha256Hex(sums));
    }
  });
});

describe.runIf(HAVE_TOOLS)('with the Flux stage', () => {
  it('servers carry the flux-bootstrap files (secrets 0600) in the bundle and user-data; the program still passes shellcheck and the schema', async () => {
    const f = withFlux(fleet);
    const stage = await prepareFlux(f, EXAMPLE);
    expect(stage.problem).toBeUndefined();
    const fdir = path.join(dir, 'flux');
    for (const d of f.active) {
      const files = renderDevice(f, d, fixedSecretsFor(d), stage.render);
      const flux = files.filter((x) => x.kind === 'flux-bootstrap');
      if (d.cluster.kind === 'multi-node-agent') expect(flux).toEqual([]);
      else {
        expect(flux.map((x) => x.path)).toEqual(['bundle/flux/edgeforge-flux-components.yaml', 'bundle/flux/edgeforge-flux-secrets.yaml', 'bundle/flux/edgeforge-flux-sync.yaml']);
        expect(flux.find((x) => x.path.endsWith('secrets.yaml'))).toMatchObject({ secret: true, mode: 0o600 });
        expect(text(files, 'seed/user-data')).toContain('path: /var/lib/edgeforge/bundle/flux/edgeforge-flux-secrets.yaml');
      }
      for (const x of files.filter((y) => y.path === 'seed/user-data' || y.path === 'bundle/firstboot.sh')) {
        mkdirSync(path.join(fdir, d.id), { recursive: true });
        writeFileSync(path.join(fdir, d.id, path.basename(x.path)), x.bytes);
      }
    }
    const ids = f.active.map((d) => d.id);
    const sc = await checked(run(tool('shellcheck'), ['--shell=sh', ...ids.map((id) => path.join(fdir, id, 'firstboot.sh'))]));
    expect(sc.stdout).toBe('');
    expect(sc.code).toBe(0);
    for (const id of ['changwon2-server', 'changwon2-press-001']) {
      const { stdout } = await run(tool('cloud-init'), ['schema', '--config-file', path.join(fdir, id, 'user-data')]);
      expect(stdout).toContain('Valid cloud-config');
    }
  }, 60_000);
});

describe.runIf(HAVE_TOOLS)('with the disk-encryption stage', () => {
  it('sealed secrets leave bundle/secrets and user-data (no private host key on the seed); unsealed ones gain the LUKS recovery passphrase', async () => {
    const d = fleet.active.find((x) => x.id === 'ulsan1-line1-001')!;
    const s = fixedSecretsFor(d);
    let seen: string[] = [];
    // a stand-in sealing to nothing real: the real stage (render/encryption/encryption-stage.ts) needs a tang advertisement
    const stage = (sealed: boolean): DeviceStage => ({
      inputs: {},
      render(dev, { bundle }) {
        if (dev.encryption.mode === 'none') return { files: [] };
        const oneTime = bundle.filter(isOneTimeSecret);
        seen = oneTime.map((f) => f.path);
        const files = [textFile('bundle/encryption/encrypt-data-volume.sh', 'other', '#!/bin/sh\n'), ...(sealed ? [textFile('bundle/sealed-secrets.jwe', 'other', 'jwe\n', true)] : [])];
        return sealed ? { files, withhold: oneTime.map((f) => f.path) } : { files };
      },
    });
    renderDevice(fleet, d, s, { encryption: stage(false) });
    expect(seen).toEqual(['bundle/secrets/ssh_host_ed25519_key', 'bundle/secrets/k3s-token']);
    // the real stage without an advertisement: nothing sealed, the LUKS recovery passphrase joins the secrets
    const clear = renderDevice(fleet, d, s, { encryption: encryptionStage(fleet, {}, 1767225600) });
    expect(text(clear, 'bundle/secrets/luks-recovery')).toBe(s.luksRecovery + '\n');
    const sealed = renderDevice(fleet, d, s, { encryption: stage(true) });
    expect(sealed.filter((f) => f.path.startsWith('bundle/secrets/'))).toEqual([]);
    const ud = text(sealed, 'seed/user-data');
    expect(ud).not.toContain('PRIVATE KEY');
    expect(ud).not.toContain(s.k3sToken);
    expect(ud).toContain('path: /var/lib/edgeforge/bundle/sealed-secrets.jwe');
    const p = path.join(dir, 'sealed-user-data');
    writeFileSync(p, ud);
    const { stdout } = await run(tool('cloud-init'), ['schema', '--config-file', p]);
    expect(stdout).toContain('Valid cloud-config');
    // a device without encryption gets nothing from the stage
    const brno = fleet.active.find((x) => x.id === 'brno1-dock-001')!;
    expect(renderDevice(fleet, brno, fixedSecretsFor(brno), { encryption: stage(true) }).map((f) => f.path)).toEqual(renderDevice(fleet, brno, fixedSecretsFor(brno)).map((f) => f.path));
  }, 60_000);
});

describe.runIf(HAVE_TOOLS)('determinism', () => {
  it('same inventory + same secrets -> byte-identical files (fresh load, fresh render)', async () => {
    const again = await exampleFleet();
    for (const d of again.active) {
      const a = rendered.get(d.id)!;
      const b = renderDevice(again, d, fixedSecretsFor(d));
      expect(b.map((f) => [f.path, f.mode, f.secret, sha256Hex(f.bytes)])).toEqual(a.map((f) => [f.path, f.mode, f.secret, sha256Hex(f.bytes)]));
    }
  });
});
