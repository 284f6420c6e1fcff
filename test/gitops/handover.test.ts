// The first-boot fragment and the hand-over program, run for real with dash against a scratch root and a
// fake `k3s kubectl` (it answers from files the test controls), and checked with shellcheck.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fluxFirstbootFragment, fluxHandoverScript, renderFluxBootstrap, FLUX_BOOTSTRAP_FILES } from '../../scripts/render/flux/index.ts';
import { exampleFleet, fakeBundle, pgpKey, sshDeployKey } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['shellcheck', 'ssh-keygen'], 'test/gitops/handover.test.ts');

const bundle = fakeBundle();
const fleet = exampleFleet({ mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: bundle.sha256 });
let tmp: string;
let R: string;
let src: string;
let fake: string;
const M = () => path.join(R, 'var/lib/rancher/k3s/server/manifests');

function sh(script: string, env: Record<string, string> = {}): { code: number; out: string } {
  const r = spawnSync('dash', ['-c', script], { encoding: 'utf8', env: { PATH: `${fake}/bin:/usr/bin:/bin`, R, FAKE: fake, ...env } });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-handover-'));
  R = path.join(tmp, 'root');
  src = path.join(tmp, 'bundle/flux');
  fake = path.join(tmp, 'fake');
  mkdirSync(R, { recursive: true });
  mkdirSync(src, { recursive: true });
  mkdirSync(path.join(fake, 'bin'), { recursive: true });
  const ssh = sshDeployKey('t');
  const d = fleet.devices.find((x) => x.id === 'ulsan1-line1-001')!;
  for (const f of renderFluxBootstrap(
    d,
    fleet,
    { deployKeyPrivate: ssh.privateKey, deployKeyPublic: ssh.publicKey, sopsPrivateArmored: (await pgpKey('d')).privateArmored },
    { bundle: bundle.bytes },
  )) {
    writeFileSync(path.join(src, path.basename(f.path)), f.bytes, { mode: f.mode });
  }
  // fake k3s: `k3s kubectl ... get secret ...` succeeds once $FAKE/secrets exists; Ready comes from $FAKE/ready
  writeFileSync(
    path.join(fake, 'bin/k3s'),
    `#!/bin/sh
case "$*" in
  *"get secret flux-system sops-gpg"*) [ -f "$FAKE/secrets" ] ;;
  *"Ready"*) cat "$FAKE/ready" 2>/dev/null ;;
  *lastAppliedRevision*) printf 'main@sha1:0123abcd' ;;
  *) exit 1 ;;
esac
`,
  );
  chmodSync(path.join(fake, 'bin/k3s'), 0o755);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(HAVE_TOOLS)('Flux bootstrap on the device', () => {
  it('passes shellcheck (POSIX sh)', () => {
    const frag = path.join(tmp, 'fragment.sh');
    writeFileSync(frag, `# shellcheck shell=sh\n${fluxFirstbootFragment(fleet)}`);
    const hand = path.join(tmp, 'handover.sh');
    writeFileSync(hand, fluxHandoverScript());
    for (const f of [frag, hand]) {
      const r = spawnSync(tool('shellcheck'), ['-s', 'sh', '-e', 'SC2034', f], { encoding: 'utf8' });
      expect(r.stdout + r.stderr, f).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('places the files in order with the right modes, and installs the hand-over job', () => {
    const r = sh(`${fluxFirstbootFragment(fleet)}\nflux_place "${src}" && flux_install_handover`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('placed 3 bootstrap file(s)');
    for (const f of FLUX_BOOTSTRAP_FILES) {
      const st = statSync(path.join(M(), f));
      expect(st.mode & 0o777).toBe(f.includes('secrets') ? 0o600 : 0o644);
      expect(readFileSync(path.join(M(), f))).toEqual(readFileSync(path.join(src, f)));
    }
    expect(statSync(path.join(R, 'usr/local/sbin/edgeforge-flux-handover')).mode & 0o111).toBeTruthy();
    expect(readFileSync(path.join(R, 'etc/systemd/system/edgeforge-flux-handover.timer'), 'utf8')).toMatch(/OnCalendar=\*:0\/2/);
  });

  it('hands over step by step: secrets off the disk first, then .skip files once Flux owns itself', () => {
    const handover = `dash ${path.join(R, 'usr/local/sbin/edgeforge-flux-handover')}`;
    let r = sh(handover);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/waiting for Flux/);
    expect(existsSync(path.join(M(), 'edgeforge-flux-secrets.yaml'))).toBe(true);

    writeFileSync(path.join(fake, 'secrets'), '');
    r = sh(handover);
    expect(r.out).toMatch(/removed the bootstrap secrets file/);
    expect(existsSync(path.join(M(), 'edgeforge-flux-secrets.yaml'))).toBe(false);
    expect(existsSync(path.join(M(), 'edgeforge-flux-secrets.yaml.skip'))).toBe(true);
    expect(existsSync(path.join(M(), 'edgeforge-flux-components.yaml.skip'))).toBe(false);

    writeFileSync(path.join(fake, 'ready'), 'False');
    expect(sh(handover).out).toMatch(/Ready=False/);
    writeFileSync(path.join(fake, 'ready'), 'True');
    r = sh(handover);
    expect(r.out).toMatch(/Flux manages itself from Git \(main@sha1:0123abcd\)/);
    for (const f of FLUX_BOOTSTRAP_FILES) expect(existsSync(path.join(M(), `${f}.skip`))).toBe(true);
    expect(readFileSync(path.join(R, 'var/lib/edgeforge/flux/handed-over'), 'utf8')).toBe('main@sha1:0123abcd\n');
    // and again: nothing left to do
    expect(sh(handover).out).toBe('');
  });

  it('a re-run of the first-boot program does not put the bootstrap back after the hand-over', () => {
    rmSync(path.join(M(), 'edgeforge-flux-components.yaml'));
    const r = sh(`${fluxFirstbootFragment(fleet)}\nflux_place "${src}"`);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/manages itself from Git since main@sha1:0123abcd/);
    expect(existsSync(path.join(M(), 'edgeforge-flux-components.yaml'))).toBe(false);
  });

  it('EDGEFORGE_FLUX_REBOOTSTRAP=1 starts over (e.g. a rotated deploy key)', () => {
    const r = sh(`${fluxFirstbootFragment(fleet)}\nflux_place "${src}"`, { EDGEFORGE_FLUX_REBOOTSTRAP: '1' });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('placed 3 bootstrap file(s)');
    for (const f of FLUX_BOOTSTRAP_FILES) {
      expect(existsSync(path.join(M(), f))).toBe(true);
      expect(existsSync(path.join(M(), `${f}.skip`))).toBe(false);
    }
    expect(existsSync(path.join(R, 'var/lib/edgeforge/flux/handed-over'))).toBe(false);
  });

  it('creates the hostPath store when the fleet has no local-path provisioner', () => {
    const f = exampleFleet({ mode: 'bundle', file: 'x', sha256: bundle.sha256 }, (t) =>
      t.replace('disable: [traefik, servicelb, metrics-server]', 'disable: [traefik, servicelb, metrics-server, local-storage]'),
    );
    const r = sh(`${fluxFirstbootFragment(f)}\nflux_place "${src}"`, { EDGEFORGE_FLUX_REBOOTSTRAP: '1' });
    expect(r.code, r.out).toBe(0);
    const dir = path.join(R, 'var/lib/rancher/k3s/storage/edgeforge-flux-source-controller');
    expect(statSync(dir).mode & 0o777).toBe(0o777);
    execFileSync('test', ['-d', dir]);
  });
});
