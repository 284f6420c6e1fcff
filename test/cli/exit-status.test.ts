// Exit status (README): 0 all done, 1 some devices failed, 2 bad usage or input — and a run that delivered nothing
// is never 0: 1 when devices were tried and none succeeded, 2 when not one of them could even be tried. A device
// that already was as wanted (a build's unchanged device, a device at the build's bundle) counts as done.
import { describe, expect, it, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { summarize, type DeviceResult } from '../../scripts/ui/reporter.ts';
import { statusExitCode } from '../../scripts/cli/commands/status.ts';
import { inventoryYaml } from '../../scripts/testkit/fake-build.ts';
import { runCli } from '../helpers.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'ef-exit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const r = (id: string, status: DeviceResult['status'], phase: string): DeviceResult => ({ id, status, phase, message: `${status} in ${phase}` });

describe('the exit status of a run over devices', () => {
  it('0 all done; a skip that means "already as wanted" is done', () => {
    expect(summarize([r('a', 'ok', 'verify'), r('b', 'skipped', 'preflight')]).exitCode).toBe(0);
    expect(summarize([r('a', 'skipped', 'done'), r('b', 'skipped', 'done')]).exitCode).toBe(0); // a build with nothing changed
    expect(summarize([]).exitCode).toBe(0); // nothing selected (an empty shard): nothing to do
  });

  it('1 some failed; also when nothing was delivered though devices were tried', () => {
    expect(summarize([r('a', 'ok', 'verify'), r('b', 'failed', 'connect')]).exitCode).toBe(1);
    expect(summarize([r('a', 'failed', 'render'), r('b', 'failed', 'write')]).exitCode).toBe(1);
    // one tried and failed, one refused before anything was tried: something was tried
    expect(summarize([r('a', 'failed', 'connect'), r('b', 'skipped', 'select')]).exitCode).toBe(1);
  });

  it('2 when not one device could be tried; refused devices beside delivered ones do not fail the run', () => {
    expect(summarize([r('a', 'skipped', 'select'), r('b', 'failed', 'select')]).exitCode).toBe(2);
    // flash: a card refused before anything is written to it was not tried
    expect(summarize([r('a', 'failed', 'preflight')], { notStarted: ['preflight'] }).exitCode).toBe(2);
    expect(summarize([r('a', 'failed', 'preflight')]).exitCode).toBe(1); // provision's preflight is on the device
    expect(summarize([r('a', 'ok', 'verify'), r('b', 'skipped', 'select')]).exitCode).toBe(0);
  });

  it('status: 1 when anyone needs a person, 2 with no active device to report on', () => {
    expect(statusExitCode({ attention: [{}], inactiveNeedsPerson: [], devices: [{}] })).toBe(1);
    expect(statusExitCode({ attention: [], inactiveNeedsPerson: ['x'], devices: [] })).toBe(1);
    expect(statusExitCode({ attention: [], inactiveNeedsPerson: [], devices: [] })).toBe(2);
    expect(statusExitCode({ attention: [], inactiveNeedsPerson: [], devices: [{}] })).toBe(0);
  });
});

describe('provision where no device can be reached', () => {
  // 24 devices at a site with no managementSubnet, and SSH not opened to everyone: the firewall accepts no SSH
  const ids = Array.from({ length: 24 }, (_, i) => `closed-${String(i + 1).padStart(3, '0')}`);
  const inv = path.join(tmp, 'closed.yaml');
  const yaml = inventoryYaml(ids.map((id, i) => ({ id, host: '127.0.0.1', port: 40000 + i })));
  writeFileSync(inv, yaml.replace(/, allowFrom: any \}.*$/m, ' }'));

  for (const dry of [false, true]) {
    it(`exits 2 with every device and its reason in --json, and tries nothing${dry ? ' (--dry-run)' : ''}`, async () => {
      const out = path.join(tmp, dry ? 'out-dry' : 'out');
      const res = await runCli(['provision', '-i', inv, '-o', out, '--keys', path.join(tmp, 'keys'), '--json', ...(dry ? ['--dry-run'] : [])]);
      expect(res.code, res.stderr).toBe(2);
      const doc = JSON.parse(res.stdout);
      expect(doc.devices).toHaveLength(24);
      expect(doc.devices.map((d: DeviceResult) => d.id)).toEqual(ids);
      for (const d of doc.devices) {
        expect(d).toEqual({ id: d.id, status: 'skipped', phase: 'select', message: expect.stringContaining(`SSH is closed on ${d.id}: site test-region/lab has no managementSubnet`) });
      }
      expect(doc.error).toMatch(/none of the 24 active device\(s\) can be reached over SSH.*Nothing was done\./);
      expect(res.stderr).toMatch(/^24 skipped in select \(closed-001, .*\+18 more\), e\.g\. closed-001: skipped in select — SSH is closed on closed-001/m);
      expect(existsSync(path.join(out, 'logs'))).toBe(false);
    });
  }
});

describe('a selection that cannot be served: exit 2, each named device with its reason in --json', () => {
  const ids = ['closed-001', 'closed-002'];
  const inv = path.join(tmp, 'closed-only.yaml');
  writeFileSync(inv, inventoryYaml(ids.map((id, i) => ({ id, host: '127.0.0.1', port: 40100 + i }))).replace(/, allowFrom: any \}.*$/m, ' }'));

  it('provision --only naming devices whose SSH is closed, or no device at all', async () => {
    const res = await runCli(['provision', '-i', inv, '-o', path.join(tmp, 'out-only'), '--keys', path.join(tmp, 'keys'), '--json', '--only', 'closed-002,closed-09']);
    expect(res.code, res.stderr).toBe(2);
    const doc = JSON.parse(res.stdout);
    expect(doc.devices).toEqual([
      { id: 'closed-002', status: 'skipped', phase: 'select', message: expect.stringMatching(/^--only: SSH is closed on closed-002: site test-region\/lab has no managementSubnet/) },
      { id: 'closed-09', status: 'skipped', phase: 'select', message: expect.stringMatching(/^--only: no device "closed-09" in .*; did you mean "closed-00\d"\?$/) },
    ]);
    expect(doc.error).toMatch(/Nothing was done\.$/);
  });

  it('build --only naming a device the inventory does not have writes nothing', async () => {
    const out = path.join(tmp, 'out-build-only');
    const res = await runCli(['build', '-i', 'inventory/example.yaml', '-o', out, '--keys', path.join(tmp, 'keys-build'), '--json', '--only', 'ulsan1-line1-001,ulsan1-line1-009']);
    expect(res.code, res.stderr).toBe(2);
    const doc = JSON.parse(res.stdout);
    expect(doc.devices).toEqual([
      { id: 'ulsan1-line1-009', status: 'skipped', phase: 'select', message: expect.stringMatching(/^--only: no device "ulsan1-line1-009" in .*did you mean "ulsan1-line1-00\d"\?$/) },
    ]);
    expect(existsSync(path.join(out, 'manifest.json'))).toBe(false);
  });

  it('status --site naming a site with no active device', async () => {
    const withStatus = path.join(tmp, 'with-status.yaml');
    writeFileSync(path.join(tmp, 'broker-ca.pem'), '');
    writeFileSync(withStatus, readFileSync('inventory/example.yaml', 'utf8') + '\nstatus:\n  broker: mqtts://127.0.0.1:8883\n  caFile: broker-ca.pem\n');
    const res = await runCli(['status', '-i', withStatus, '--json', '--site', 'nowhere'], { env: { EDGEFORGE_STATUS_PASSWORD: 'x'.repeat(24) } });
    expect(res.code, res.stderr).toBe(2);
    expect(JSON.parse(res.stdout).error).toMatch(/^--site nowhere: no active device in that site \(sites: /);
  });
});
