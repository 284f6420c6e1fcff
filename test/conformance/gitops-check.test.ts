// `edgeforge gitops --check` through the CLI: clean on the tree it writes, and each known way a tree fails on a
// real cluster refused with its reason, one line per object (PATH: kind/name: reason), exit 1 — a drain timeout
// the controller cannot decode, a Job changed under its name, an admission policy on a K3s line that lacks it,
// an expired join token (a warning; an error with --strict) — and --against a Git revision.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { exampleInventoryText } from '../gitops/fixtures.ts';
import { fleetDir, install, NOW, type FleetDir } from './fixtures.ts';
import { MANAGED_LINE } from '../../scripts/render/gitops/marker.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen', 'git'], 'test/conformance/gitops-check.test.ts');

const PLANS = 'upgrades/kr-south/changwon-plant-2/plans.yaml';
const REVOKED = 'clusters/kr-south/changwon-plant-2/changwon2-server/join-tokens/revoked-changwon2-press-001.yaml';
let f: FleetDir;
const repo = (p = '') => path.join(f.dir, 'repo', p);
const check = (...a: string[]) => f.run('gitops', '--to', 'repo', '--check', ...a);
const lines = (out: string) => out.split('\n').filter(Boolean);

describe.runIf(HAVE_TOOLS)('gitops --check', () => {
  beforeAll(async () => {
    f = await fleetDir(exampleInventoryText(install));
    expect((await f.run('gitops', '--to', 'repo')).code).toBe(0);
    expect((await f.run('revoke', 'changwon2-press-001', '--reason', 'stolen', '--gitops', 'repo')).code).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(f.dir, { recursive: true, force: true }));

  it('is clean on the tree gitops --to writes, and says what it checked against', async () => {
    const r = await check();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /repo: \d+ objects in \d+ files checked against Kubernetes 1\.36 and system-upgrade-controller@v0\.16\.1, flux@v2\.9\.6, changes against .*repo as it is: 0 problem\(s\), \d+ warning\(s\) — OK/,
    );
    const j = JSON.parse((await check('--json')).stdout);
    expect(j).toMatchObject({ ok: true, errors: [], checked: { kubernetes: ['1.36'], releases: ['system-upgrade-controller@v0.16.1', 'flux@v2.9.6'] } });
  });

  it('refuses a Plan whose drain timeout is the string "10m" (an operator took the file over): the controller decodes nanoseconds', async () => {
    const before = readFileSync(repo(PLANS), 'utf8');
    try {
      writeFileSync(repo(PLANS), before.replace(MANAGED_LINE + '\n', '').replace(/timeout: 600000000000/, 'timeout: 10m'));
      const r = await check();
      expect(r.code).toBe(1);
      expect(lines(r.stdout)).toEqual([`${PLANS}: Plan/system-upgrade/k3s-agent: spec.drain.timeout: must be a whole number, is a string ("10m") (system-upgrade-controller@v0.16.1)`]);
    } finally {
      writeFileSync(repo(PLANS), before);
    }
  });

  it('refuses a Job whose pod template changes under the same name since the tree the clusters applied', async () => {
    const prev = path.join(f.dir, 'prev-job');
    cpSync(repo(), prev, { recursive: true });
    const p = path.join(prev, REVOKED);
    writeFileSync(p, readFileSync(p, 'utf8').replace(/image: docker\.io\/rancher\/kubectl:v1\.35\.6/g, 'image: docker.io/rancher/kubectl:v1.34.9'));
    const r = await check('--against', prev);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(
        new RegExp(`^${REVOKED}: Job/kube-system/revoke-changwon2-press-001-[0-9a-f]{8}: spec\\.template changes under the same name, and the API server refuses to change it on an existing Job`),
      ),
    ]);
  });

  it("refuses the revoked agent's admission policy while a cluster still runs K3s v1.29 (the previous tree's Plans)", async () => {
    const prev = path.join(f.dir, 'prev-129');
    cpSync(repo(), prev, { recursive: true });
    const p = path.join(prev, PLANS);
    writeFileSync(p, readFileSync(p, 'utf8').replace(/version: v1\.36\.5\+k3s1/g, 'version: v1.29.15+k3s1'));
    const r = await check('--against', prev, '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.checked.kubernetes).toEqual(['1.29', '1.36']);
    const vap = j.errors.filter((e: { path: string }) => e.path === REVOKED);
    expect(vap.map((e: { ref: string; reason: string }) => `${e.ref}: ${e.reason}`)).toEqual([
      expect.stringMatching(
        /^ValidatingAdmissionPolicy\/edgeforge-revoked-changwon2-press-001: Kubernetes 1\.29 does not serve ValidatingAdmissionPolicy as admissionregistration\.k8s\.io\/v1 .*no matches for kind.* \[Kubernetes 1\.29\]$/,
      ),
      expect.stringMatching(/^ValidatingAdmissionPolicyBinding\/edgeforge-revoked-changwon2-press-001: Kubernetes 1\.29 does not serve/),
    ]);
  });

  it('an expired join token (no admin key to renew it) is a warning, and an error with --strict', async () => {
    const keys = path.join(f.dir, 'keys');
    const hidden = path.join(f.dir, 'example-admin.hidden');
    cpSync(path.join(keys, 'example-admin'), hidden, { recursive: true });
    rmSync(path.join(keys, 'example-admin'), { recursive: true });
    try {
      const later = String(Number(NOW) + 40 * 86400); // 40 days on: past the 30-day window
      const r = await f.runAt(later, 'gitops', '--to', 'repo', '--check', '--json');
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.warnings).toContainEqual(
        expect.stringMatching(
          /join-tokens\/changwon2-press-002\.token\.yaml: join token Secret\/kube-system\/bootstrap-token-[a-z0-9]{6} of agent changwon2-press-002 expired on 2027-01-09T00:00:00Z \(10 days ago\)/,
        ),
      );
      expect(j.warnings).toContainEqual(expect.stringMatching(/agent join tokens not written \(needs an admin key/));
      const s = await f.runAt(later, 'gitops', '--to', 'repo', '--check', '--strict');
      expect(s.code).toBe(1);
      expect(s.stderr).toMatch(/^error: .*changwon2-press-002 expired on/m);
    } finally {
      cpSync(hidden, path.join(keys, 'example-admin'), { recursive: true });
    }
  });

  it('--against a Git revision of the working tree', async () => {
    const git = (...a: string[]) =>
      execFileSync(tool('git'), ['-C', repo(), ...a], {
        encoding: 'utf8',
        env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e' },
      });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'tree');
    const r = await check('--against', 'HEAD', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).checked.against).toBe(`HEAD of ${repo().replace(/\/$/, '')}`);
    const bad = await check('--against', 'no-such-rev');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--against no-such-rev: neither a directory nor a revision/);
  });
});
