import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { runCli } from '../helpers.ts';
import { commands } from '../../scripts/cli/commands/index.ts';
import { commandHelp } from '../../scripts/cli/command.ts';

const SPEC_COMMANDS = ['validate', 'plan', 'keys init', 'build', 'image materialize', 'flash', 'provision', 'revoke', 'replace', 'inventory generate'];

describe('edgeforge --help', () => {
  it('lists every command of SPEC.md', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const c of SPEC_COMMANDS) expect(stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });
  it('every command has --help with an example', async () => {
    for (const c of commands) {
      const { code, stdout } = await runCli([...c.name.split(' '), '--help']);
      expect(code, c.name).toBe(0);
      expect(stdout, c.name).toContain(`Usage: edgeforge ${c.name.split(' ')[0]}`);
      expect(stdout, c.name).toMatch(/Example:\n  .*\bedgeforge /);
      expect(commandHelp(c)).toBe(stdout);
    }
  });
  it('works through the package bin (npx edgeforge)', () => {
    const out = execFileSync('node', ['scripts/bin/edgeforge.mjs', '--help'], { encoding: 'utf8' });
    expect(out).toContain('Commands:');
  });
});

describe('usage errors exit 2 and say what to do', () => {
  it('unknown command with a suggestion', async () => {
    const r = await runCli(['valdate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "valdate"; did you mean "validate"?');
  });
  it('unknown option', async () => {
    const r = await runCli(['validate', '--inventroy', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--inventroy'/);
    expect(r.stderr).toContain('edgeforge validate --help');
  });
  it('a group without a sub-command lists its sub-commands', async () => {
    const r = await runCli(['keys']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('edgeforge keys init');
  });
});

describe('validate', () => {
  it('accepts the example fleet', async () => {
    const r = await runCli(['validate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid — fleet acme-smart-factory: 14 active device(s) in 4 site(s), 2 region(s)');
  });
  it('prints FILE:LINE:COL problems, exit 2, writes nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-validate-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, readFileSync('inventory/example.yaml', 'utf8').replace('    ramMiB: 2048', '    ramMB: 2048'));
    const r = await runCli(['validate', '-i', file, '-o', path.join(dir, 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+:5: unknown key "ramMB"`, 'm'));
    expect(r.stderr).toContain('nothing was written');
    expect(readdirSync(dir)).toEqual(['bad.yaml']);
  });
  it('--json gives a machine-readable result', async () => {
    const r = await runCli(['validate', '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, activeDevices: 14, sites: 4 });
    const bad = await runCli(['validate', '--json', '-i', 'no/such.yaml']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).problems[0]).toMatchObject({ file: 'no/such.yaml', line: 1, col: 1 });
  });
});

describe('inventory generate / import', () => {
  it('generate writes a valid inventory', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-gen-'));
    const out = path.join(dir, 'fleet.yaml');
    expect((await runCli(['inventory', 'generate', '--devices', '250', '-o', out])).code).toBe(0);
    const r = await runCli(['validate', '-i', out]);
    expect(r.stdout).toContain('250 active device(s)');
    expect((await runCli(['inventory', 'generate', '--devices', 'many'])).code).toBe(2);
  });

  it('import adds CSV rows, keeps comments, and reports bad rows by row number', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-import-'));
    const inv = path.join(dir, 'fleet.yaml');
    writeFileSync(inv, readFileSync('inventory/example.yaml'));
    const csv = path.join(dir, 'line3.csv');
    writeFileSync(
      csv,
      'id,serial,mac,region,site,profile,address\r\nulsan1-line3-001,10000000a3f1c101,dc:a6:32:10:03:01,kr-south,ulsan-plant-1,rpi4-4g,10.20.1.31/24\r\n"ulsan1-line3-002","10000000a3f1c102",dc:a6:32:10:03:02,kr-south,ulsan-plant-1,,10.20.1.32/24\r\nbusan1-gw-001,20000000aa000001,dc:a6:32:20:00:01,kr-south,busan-port-1,,\r\n',
    );
    // busan-port-1 is a new site: refused unless asked for
    const refused = await runCli(['inventory', 'import', csv, '-i', inv]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${csv}:4:5: site "busan-port-1" is not in region "kr-south"`);
    const r = await runCli(['inventory', 'import', csv, '-i', inv, '--allow-new-sites']);
    expect(r.stderr).toContain('added 3 device(s)');
    expect(r.code).toBe(0);
    const text = readFileSync(inv, 'utf8');
    expect(text).toContain("# the Git host's key, pinned: devices never trust on first use");
    const v = await runCli(['validate', '-i', inv, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ activeDevices: 17, sites: 5 });

    const before = readFileSync(inv, 'utf8');
    const bad = path.join(dir, 'bad.csv');
    writeFileSync(
      bad,
      'id,serial,mac,region,site\nok-device-1,30000000aa000001,dc:a6:32:30:00:01,kr-south,ulsan-plant-1\nBad_Id,30000000aa000002,dc:a6:32:30:00:02,kr-south,ulsan-plant-1\nok-device-3,30000000aa000003,not-a-mac,kr-south,ulsan-plant-1\n',
    );
    const rb = await runCli(['inventory', 'import', bad, '-i', inv]);
    expect(rb.code).toBe(2);
    expect(rb.stderr).toContain(`${bad}:3:1: id "Bad_Id"`); // row 3, column 1 (id)
    expect(rb.stderr).toContain(`${bad}:4:3: mac "not-a-mac"`); // row 4, column 3 (mac)
    expect(readFileSync(inv, 'utf8')).toBe(before);
  });
  it('CSV problems: missing columns and empty required fields', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ef-import-'));
    const bad = path.join(dir, 'bad.csv');
    writeFileSync(bad, 'id;serial;site\nx1;;s\n');
    const r = await runCli(['inventory', 'import', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:1:1: missing column "mac"`);
    expect(r.stderr).toContain(`${bad}:2:2: row 2: "serial" is empty`);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });
});

describe('npm start on the example fleet', () => {
  it('runs the quick start command', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    const [, script, ...args] = pkg.scripts.start.split(' ');
    const r = spawnSync('node', [script, ...args], { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: '1767225600' }, timeout: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    // its last lines say what to do next, with this build's real folder and one of its real devices
    const manifest = JSON.parse(readFileSync('images/out/manifest.json', 'utf8'));
    const id = manifest.devices[0].id;
    const last = r.stderr.trimEnd().split('\n').slice(-6);
    expect(last[0]).toBe('Next (the build is in images/out/):');
    expect(last.join('\n')).toContain('npx edgeforge plan | less');
    expect(last.join('\n')).toContain('npx edgeforge verify images/out');
    expect(last.join('\n')).toContain(`npx edgeforge image materialize --device ${id} --to /tmp/${id}.img`);
    expect(last.at(-1)).toContain(`npx edgeforge flash --device ${id} --target /dev/sdX --verify`);
  }, 300_000);
});
