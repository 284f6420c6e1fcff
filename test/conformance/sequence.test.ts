// A fleet's GitOps tree through a realistic life — build, revoke an agent, promote a K3s rollout, rotate a site
// key, revoke a device, pin a new kubectl and promote again — for the example fleet and a generated 200-device
// fleet. After every step `edgeforge gitops --check --against <the tree before>` must find nothing: every object
// accepted by the pinned upstream schemas of every K3s line the tree targets (and the lines the previous tree's
// Plans held), and nothing the clusters applied before changed in a field the API server refuses to change.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import type { runCli } from '../helpers.ts';
import { exampleInventoryText } from '../gitops/fixtures.ts';
import { fleetDir, generatedText, install, startOf } from './fixtures.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/conformance/sequence.test.ts');

const DIGEST = 'sha256:' + 'ab'.repeat(32);

async function lifeOf(text: string, pick: (f: Fleet) => { agent: string; single: string; site: string }) {
  const { dir, fleet, run } = await fleetDir(startOf(text));
  const { agent, single, site } = pick(fleet());
  const snaps = path.join(dir, 'snapshots');
  mkdirSync(path.join(snaps, '0-empty'), { recursive: true });
  let previous = path.join(snaps, '0-empty');
  const edit = (f: (t: string) => string) => writeFileSync(path.join(dir, 'fleet.yaml'), f(readFileSync(path.join(dir, 'fleet.yaml'), 'utf8')));
  const ok = async (r: Awaited<ReturnType<typeof runCli>>) => expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
  const steps: [string, () => Promise<void>][] = [
    ['gitops --to (the first tree)', async () => ok(await run('gitops', '--to', 'repo'))],
    [`revoke agent ${agent}`, async () => ok(await run('revoke', agent, '--reason', 'stolen', '--gitops', 'repo'))],
    [
      'rollout promote (v1.34.9 -> v1.35.6), gitops --to',
      async () => {
        await ok(await run('rollout', 'promote'));
        await ok(await run('gitops', '--to', 'repo'));
      },
    ],
    [`keys rotate --site ${site}`, async () => ok(await run('keys', 'rotate', '--site', site, '--gitops', 'repo', '--reason', 'scheduled'))],
    [`revoke ${single}`, async () => ok(await run('revoke', single, '--reason', 'lost', '--gitops', 'repo'))],
    [
      'a new kubectl pin and a rollout to v1.36.5, gitops --to',
      async () => {
        edit((t) =>
          t.replace(
            /^  version: v1\.35\.6\+k3s1\n/m,
            `  version: v1.35.6+k3s1\n  canaryVersion: v1.36.5+k3s1\n  upgrade:\n    kubectl: { ref: docker.io/rancher/kubectl:v1.35.6, sha256: "${DIGEST}" }\n`,
          ),
        );
        await ok(await run('gitops', '--to', 'repo'));
      },
    ],
    [
      'rollout promote (v1.35.6 -> v1.36.5), gitops --to --prune',
      async () => {
        await ok(await run('rollout', 'promote'));
        await ok(await run('gitops', '--to', 'repo', '--prune'));
      },
    ],
  ];
  const report: string[] = [];
  for (const [i, [name, act]] of steps.entries()) {
    await act();
    const c = await run('gitops', '--to', 'repo', '--check', '--against', previous, '--json');
    const res = JSON.parse(c.stdout);
    expect(res.errors, `after "${name}"`).toEqual([]);
    expect(c.code, `after "${name}": ${c.stderr}`).toBe(0);
    report.push(`${name}: ${res.checked.objects} objects against Kubernetes ${res.checked.kubernetes.join(', ')}`);
    if (process.env.EDGEFORGE_TEST_VERBOSE) console.log(report.at(-1), `(${res.warnings.length} warnings)`);
    const snap = path.join(snaps, `${i + 1}`);
    cpSync(path.join(dir, 'repo'), snap, { recursive: true });
    previous = snap;
  }
  return { dir, fleet, run, report, previous };
}

describe.runIf(HAVE_TOOLS)('a GitOps tree through revocations, promotions and key rotations', () => {
  it('the example fleet: every tree conforms, every change can be applied on the tree before', async () => {
    const { dir, fleet, report } = await lifeOf(exampleInventoryText(install), () => ({ agent: 'changwon2-press-001', single: 'ulsan1-line1-002', site: 'kr-south/ulsan-plant-1' }));
    try {
      // the checks ran against the lines the rings (and the previous Plans) ran: v1.34 and v1.35 at first, v1.36 at the end
      expect(report[0]).toMatch(/against Kubernetes 1\.34, 1\.35$/);
      expect(report.at(-1)).toMatch(/against Kubernetes 1\.35, 1\.36$/);
      expect(fleet().k3s.version).toBe('v1.36.5+k3s1');
      // the revoked agent's Job: renamed when the kubectl pin changed, never changed under one name
      const revoked = readFileSync(path.join(dir, 'repo/clusters/kr-south/changwon-plant-2/changwon2-server/join-tokens/revoked-changwon2-press-001.yaml'), 'utf8');
      expect(revoked).toContain(`image: docker.io/rancher/kubectl:v1.35.6@${DIGEST}`);
      expect(revoked).toMatch(/name: revoke-changwon2-press-001-[0-9a-f]{8}\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  it('a generated 200-device fleet (five multi-node sites): the same life, every tree conforms', async () => {
    const { dir, report } = await lifeOf(generatedText(200), (f) => {
      const agents = f.active.filter((d) => d.cluster.kind === 'multi-node-agent');
      const other = agents.find((d) => d.siteId !== agents[0].siteId)!;
      return { agent: agents[0].id, single: other.id, site: other.siteId };
    });
    try {
      expect(report).toHaveLength(7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
