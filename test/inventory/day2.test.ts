// Day-2 settings refused with their position: an unknown or malformed K3s version, an empty
// window, one without a time zone or with an unknown zone, a rollout whose canary
// ring has no device, an airgap rollout without the canary release's airgap files (or those files without a
// rollout, or holding the stable release). Through the CLI: FILE:LINE:COL, exit 2, nothing written.
import { describe, expect, it, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { INDUSTRY_WINDOWS } from '../../scripts/inventory/windows.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ef-day2-inv-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function lineOf(text: string, needle: string): number {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`fixture lacks ${needle}`);
  return text.slice(0, i).split('\n').length;
}

const WINDOW_AT_SITE = (w: string) =>
  example.replace('        canary: true                 # gets GitOps changes first\n', `        canary: true                 # gets GitOps changes first\n        maintenanceWindow: ${w}\n`);

// an airgap fleet (the pins need not match files: validate reads only the image archives)
const AIRGAP = (install: string, k3s = '') =>
  example
    .replace(
      /  install:\n(    #[^\n]*\n)*    mode: online\n    installScriptSha256: "0+"\n/,
      `  install:\n    mode: airgap\n    bundle: bundles/k3s\n    sha256: { binary: "${'a'.repeat(64)}", images: "${'b'.repeat(64)}", installScript: "${'c'.repeat(64)}" }\n${install}`,
    )
    .replace('  version: v1.36.5+k3s1\n', `  version: v1.35.6+k3s1\n${k3s}`);
const CANARY_FILES = (binary: string) => `    canary:\n      bundle: bundles/k3s-v1.36.5\n      sha256: { binary: "${binary}", images: "${'e'.repeat(64)}", installScript: "${'c'.repeat(64)}" }\n`;

const cases: [string, string, string, RegExp][] = [
  [
    "an airgap rollout without the canary release's airgap files",
    AIRGAP('', '  canaryVersion: v1.36.5+k3s1\n'),
    '  canaryVersion',
    /an airgap fleet's canary ring installs v1\.36\.5\+k3s1 at first boot from its own airgap files: add k3s\.install\.canary/,
  ],
  [
    'canary airgap files without a rollout',
    AIRGAP(CANARY_FILES('f'.repeat(64))),
    '      bundle: bundles/k3s-v1.36.5',
    /k3s\.install\.canary is only for a rollout in progress, and k3s\.canaryVersion is not set/,
  ],
  [
    'canary airgap files holding the stable binary',
    AIRGAP(CANARY_FILES('a'.repeat(64)), '  canaryVersion: v1.36.5+k3s1\n'),
    `      sha256: { binary: "${'a'.repeat(64)}", images: "${'e'}`,
    /the same binary as the stable ring's/,
  ],
  ['an unknown K3s release line', example.replace('  version: v1.36.5+k3s1\n', '  version: v1.99.0+k3s1\n'), '  version: v1.99', /K3s v1\.99\.0\+k3s1 is not a release line edgeforge knows/],
  ['a malformed K3s version', example.replace('  version: v1.36.5+k3s1\n', '  version: "1.31"\n'), '  version: "1.31"', /must be a K3s release like v1\.36\.5\+k3s1/],
  ['a malformed canary version', example.replace('  version: v1.36.5+k3s1\n', '  version: v1.35.6+k3s1\n  canaryVersion: latest\n'), '  canaryVersion', /must be a K3s release/],
  ['an empty window', WINDOW_AT_SITE('{ days: [sat], start: "02:00", end: "02:00", timeZone: Asia/Seoul }'), '        maintenanceWindow:', /window 02:00-02:00 is empty/],
  ['a window without days', WINDOW_AT_SITE('{ days: [], start: "02:00", end: "04:00", timeZone: Asia/Seoul }'), '        maintenanceWindow:', /at least one day/],
  ['a window with no time zone', WINDOW_AT_SITE('{ days: [sat], start: "02:00", end: "04:00" }'), '        maintenanceWindow:', /missing required key "timeZone"/],
  [
    'a window with an unknown time zone',
    WINDOW_AT_SITE('{ days: [sat], start: "02:00", end: "04:00", timeZone: Mars/Olympus }'),
    '        maintenanceWindow:',
    /"Mars\/Olympus" is not an IANA time zone/,
  ],
  [
    'a rollout whose canary ring has no device',
    example
      .replace('        canary: true                 # gets GitOps changes first\n', '        canary: false\n')
      .replace('  version: v1.36.5+k3s1\n', '  version: v1.35.6+k3s1\n  canaryVersion: v1.36.5+k3s1\n'),
    '  canaryVersion',
    /needs a canary ring, and no site with canary: true has an active device/,
  ],
];

describe('day-2 inventory problems', () => {
  it.each(cases)('%s: validate says where (FILE:LINE:COL), exit 2; gitops writes nothing', async (_name, text, needle, message) => {
    writeFileSync(path.join(tmp, 'fleet.yaml'), text);
    const r = await runCli(['validate', '-i', 'fleet.yaml'], { cwd: tmp });
    expect(r.code).toBe(2);
    const line = r.stderr.split('\n').find((l) => message.test(l));
    expect(line, r.stderr).toBeDefined();
    expect(line!.startsWith(`fleet.yaml:${lineOf(text, needle)}:`)).toBe(true);
    const g = await runCli(['gitops', '--to', 'repo', '-i', 'fleet.yaml', '--keys', 'keys'], { cwd: tmp });
    expect(g.code).toBe(2);
    expect(existsSync(path.join(tmp, 'repo'))).toBe(false);
  });

  it('a window across midnight is valid: the upgrade controller reads it (on each listed day, start-24:00 and 00:00-end)', async () => {
    writeFileSync(path.join(tmp, 'fleet.yaml'), WINDOW_AT_SITE('{ days: [sat], start: "22:00", end: "04:00", timeZone: Asia/Seoul }'));
    const r = await runCli(['validate', '-i', 'fleet.yaml'], { cwd: tmp });
    expect(r.code, r.stderr).toBe(0);
  });

  it("a fleet that marks no canary site gets its industry preset's share (each region's first site first), or none with canaryPercent: 0", () => {
    const unmarked = example.replace('        canary: true                 # gets GitOps changes first\n', '');
    const f = loadInventoryBytes(Buffer.from(unmarked), 'x.yaml');
    // manufacturing: 10% of 4 sites, at least one: the first site of the first region
    expect(f.sites.filter((s) => s.canary).map((s) => s.id)).toEqual(['kr-south/ulsan-plant-1']);
    expect(f.sites[0].canarySource).toBe('industry manufacturing');
    expect(f.active.filter((d) => d.canary).map((d) => d.siteId)).toEqual(Array(4).fill('kr-south/ulsan-plant-1'));
    const none = loadInventoryBytes(Buffer.from(unmarked.replace(/^defaults:\n/m, 'defaults:\n  policy: { canaryPercent: 0 }\n')), 'x.yaml');
    expect(none.sites.every((s) => !s.canary)).toBe(true);
    // half of the sites: one per region before any region gets a second
    const half = loadInventoryBytes(Buffer.from(unmarked.replace(/^defaults:\n/m, 'defaults:\n  policy: { canaryPercent: 50 }\n')), 'x.yaml');
    expect(half.sites.filter((s) => s.canary).map((s) => s.id)).toEqual(['kr-south/ulsan-plant-1', 'eu-central/stuttgart-plant-3']);
    // a site that says canary: (even false) makes the inventory decide alone
    const explicit = loadInventoryBytes(Buffer.from(unmarked.replace('        location: Brno, CZ\n', '        location: Brno, CZ\n        canary: false\n')), 'x.yaml');
    expect(explicit.sites.every((s) => !s.canary)).toBe(true);
    // the preset's ring is a ring: a rollout to it is valid
    const rollout = loadInventoryBytes(Buffer.from(unmarked.replace('  version: v1.36.5+k3s1\n', '  version: v1.35.6+k3s1\n  canaryVersion: v1.36.5+k3s1\n')), 'x.yaml');
    expect(rollout.sites.filter((s) => s.canary).map((s) => s.id)).toEqual(['kr-south/ulsan-plant-1']);
  });

  it('windows cascade site > region > defaults > the industry default, and say where they came from', () => {
    const text = example
      .replace('  timezone: Etc/UTC\n', '  timezone: Etc/UTC\n  maintenanceWindow: { days: [sun], start: "01:00", end: "03:00", timeZone: Etc/UTC }\n')
      .replace('    timezone: Europe/Berlin\n', '    timezone: Europe/Berlin\n    maintenanceWindow: { days: [sat, sun], start: "00:00", end: "04:00", timeZone: Europe/Berlin }\n');
    const f = loadInventoryBytes(Buffer.from(text), 'x.yaml');
    const by = Object.fromEntries(f.sites.map((s) => [s.name, s.window]));
    expect(by['stuttgart-plant-3']).toMatchObject({ days: ['sat', 'sun'], start: '00:00', source: 'region eu-central' });
    expect(by['ulsan-plant-1']).toMatchObject({ days: ['sun'], start: '01:00', source: 'defaults' });
    const plain = loadInventoryBytes(Buffer.from(example), 'x.yaml');
    const w = plain.sites[0].window;
    expect(w).toMatchObject({ start: INDUSTRY_WINDOWS.manufacturing.start, end: INDUSTRY_WINDOWS.manufacturing.end, timeZone: 'Asia/Seoul', source: 'industry manufacturing' });
    const retail = loadInventoryBytes(Buffer.from(example.replace('industry: manufacturing', 'industry: retail')), 'x.yaml');
    expect(retail.sites[0].window).toMatchObject({ start: '01:00', end: '06:00', source: 'industry retail' });
    const odd = loadInventoryBytes(Buffer.from(example.replace('industry: manufacturing', 'industry: aquaculture')), 'x.yaml');
    expect(odd.sites[0].window.source).toMatch(/industry default/);
    const site = loadInventoryBytes(Buffer.from(WINDOW_AT_SITE('{ days: [wed], start: "12:00", end: "13:00", timeZone: Asia/Seoul }')), 'x.yaml');
    expect(site.sites[0].window).toMatchObject({ days: ['wed'], source: 'site' });
  });
});

describe('the upgrade path in the image-archive mechanism (k3s.upgrade.images)', () => {
  const airgap = (images: string) =>
    example.replace(
      /  install:\n(    #[^\n]*\n)*    mode: online\n    installScriptSha256: "0+"\n/,
      `  install:\n    mode: airgap\n    bundle: bundles/k3s\n    sha256: { binary: "${'a'.repeat(64)}", images: "${'b'.repeat(64)}", installScript: "${'c'.repeat(64)}" }\n  upgrade:\n    images:\n${images}`,
    );
  const e = (image: string, file: string) => `      - { image: ${image}, file: ${file}, sha256: "${'d'.repeat(63)}${file.length % 10}" }\n`;
  it('its archives join the fleet-wide list as component k3s-upgrade; an airgap fleet without them is told which are missing', async () => {
    const { upgradeImageArchiveProblems } = await import('../../scripts/render/day2/upgrade-images.ts');
    const all =
      e('docker.io/rancher/system-upgrade-controller:v0.16.1', 'bundles/up/suc.tar') +
      e('docker.io/rancher/kubectl:v1.35.6', 'bundles/up/kubectl.tar') +
      e('docker.io/rancher/k3s-upgrade:v1.36.5-k3s1', 'bundles/up/k3s-upgrade.tar');
    const f = loadInventoryBytes(Buffer.from(airgap(all)), 'x.yaml');
    expect(f.imageArchives.filter((a) => a.component === 'k3s-upgrade').map((a) => a.name)).toEqual(['suc.tar', 'kubectl.tar', 'k3s-upgrade.tar']);
    expect(upgradeImageArchiveProblems(f)).toEqual([]);
    const partial = loadInventoryBytes(Buffer.from(airgap(e('docker.io/rancher/kubectl:v1.35.6', 'bundles/up/kubectl.tar'))), 'x.yaml');
    const missing = upgradeImageArchiveProblems(partial);
    expect(missing).toHaveLength(2);
    expect(missing[0]).toMatch(/needs docker\.io\/rancher\/system-upgrade-controller:v0\.16\.1 .*k3s\.upgrade\.images has no archive of it/);
    expect(missing[1]).toMatch(/docker\.io\/rancher\/k3s-upgrade:v1\.36\.5-k3s1/);
    // online fleets pull: nothing to pin
    expect(upgradeImageArchiveProblems(loadInventoryBytes(Buffer.from(example), 'x.yaml'))).toEqual([]);
  });
});
