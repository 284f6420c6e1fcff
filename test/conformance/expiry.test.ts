// What expires, through the CLI on the clock (EDGEFORGE_NOW), not SOURCE_DATE_EPOCH: join tokens written by
// `gitops --to` with an old SOURCE_DATE_EPOCH are not already expired; the CA certificates every device pins —
// the status broker's and the OCI registry's — warn when expired or inside their renewal margin, in `gitops --to
// --json` too, and `build --strict` refuses them before building anything.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { runCli } from '../helpers.ts';
import { exampleInventoryText } from '../gitops/fixtures.ts';
import { fleetDir, install, NOW, type FleetDir } from './fixtures.ts';
import { CA_MARGIN_DAYS } from '../../scripts/pipeline/inputs/expiries.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen', 'openssl'], 'test/conformance/expiry.test.ts');

const DAY = 86_400;
let f: FleetDir;
const cli = (env: Record<string, string>, ...a: string[]) => runCli([...a, '-i', 'fleet.yaml', '--keys', 'keys'], { cwd: f.dir, env });

/** A self-signed CA certificate valid for `days` from the real clock; returns its end, epoch seconds. */
function ca(file: string, cn: string, days: number): number {
  execFileSync(
    tool('openssl'),
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', file, '-days', String(days), '-subj', `/CN=${cn}`],
    { stdio: 'ignore' },
  );
  return Math.floor(Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000);
}

function tokenExpiries(root: string): string[] {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.token.yaml') ? [path.join(d, e.name)] : []));
  return walk(root).map((p) => /edgeforge\.dev\/expires: "?([^"\n]+)"?/.exec(readFileSync(p, 'utf8'))![1]);
}

describe.runIf(HAVE_TOOLS)('what expires, on the clock', () => {
  beforeAll(async () => {
    f = await fleetDir(exampleInventoryText(install));
  }, 120_000);
  afterAll(() => rmSync(f.dir, { recursive: true, force: true }));

  it('gitops --to with an old SOURCE_DATE_EPOCH writes join tokens that expire a window after the clock, not already expired', async () => {
    const old = String(Number(NOW) - 200 * DAY);
    const r = await cli({ EDGEFORGE_NOW: NOW, SOURCE_DATE_EPOCH: old }, 'gitops', '--to', 'repo', '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { warnings: string[]; joinTokens: { written: string[] } };
    expect(j.joinTokens.written.length).toBeGreaterThan(0);
    const ends = tokenExpiries(path.join(f.dir, 'repo')).map((e) => Date.parse(e) / 1000);
    expect(ends.length).toBeGreaterThan(0);
    for (const e of ends) expect(e, new Date(e * 1000).toISOString()).toBeGreaterThan(Number(NOW) + 7 * DAY);
    expect(j.warnings.filter((w) => /join token .* (expired|renewal margin)/.test(w))).toEqual([]);
  });

  it("the broker's and the OCI registry's CA: a warning when due or expired (gitops --to --json too), refused by build --strict", async () => {
    const brokerEnd = ca(path.join(f.dir, 'broker-ca.pem'), 'broker-ca', 200);
    const registryEnd = ca(path.join(f.dir, 'registry-ca.pem'), 'registry-ca', 60);
    const doc = parseDocument(readFileSync(path.join(f.dir, 'fleet.yaml'), 'utf8'));
    doc.set('status', doc.createNode({ broker: 'mqtts://broker.acme.example:8883', caFile: 'broker-ca.pem' }));
    doc.setIn(['gitops', 'transport'], 'oci');
    doc.setIn(['gitops', 'oci'], doc.createNode({ registry: 'registry.acme.example:5000', repository: 'acme/fleet', caFile: 'registry-ca.pem' }));
    writeFileSync(path.join(f.dir, 'fleet.yaml'), doc.toString());
    // the clock 70 days before the broker CA ends (inside its 90-day margin), after the registry CA ended
    const now = brokerEnd - 70 * DAY;
    expect(now).toBeGreaterThan(registryEnd);
    expect(CA_MARGIN_DAYS).toBeGreaterThan(70);
    const env = { EDGEFORGE_NOW: String(now) };
    const broker = /^status\.caFile broker-ca\.pem: broker CA certificate \(CN=broker-ca\) expires on \S+, in (69|70) days: inside its 90-day renewal margin$/;
    const registry = /^gitops\.oci\.caFile registry-ca\.pem: OCI registry CA certificate \(CN=registry-ca\) expired on \S+ \((69|70) days ago\)$/;

    const g = await cli(env, 'gitops', '--to', 'repo', '--json');
    expect(g.code, g.stderr).toBe(0);
    const w = JSON.parse(g.stdout).warnings as string[];
    expect(w).toContainEqual(expect.stringMatching(broker));
    expect(w).toContainEqual(expect.stringMatching(registry));

    const b = await cli(env, 'build', '-o', 'out', '--strict');
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/fleet\.yaml: error: gitops\.oci\.caFile registry-ca\.pem: OCI registry CA certificate .* expired on/);
    expect(b.stderr).toMatch(/fleet\.yaml: error: status\.caFile broker-ca\.pem: broker CA certificate .* renewal margin/);
    expect(b.stderr).toMatch(/refused with --strict; nothing was built/);
    expect(() => readdirSync(path.join(f.dir, 'out'))).toThrow();
  }, 120_000);
});
