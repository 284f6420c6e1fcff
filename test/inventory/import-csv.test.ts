// `inventory import devices.csv`: every problem at the CSV's own ROW:COL — also invalid ids and MACs, duplicates
// (within the CSV and against the inventory) and problems only the merged inventory shows; unknown regions and
// sites are errors naming the known ones unless --allow-new-sites; nothing is written on any problem.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { importCsv } from '../../scripts/inventory/import-csv.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { InventoryError } from '../../scripts/util/errors.ts';
import { EXAMPLE } from '../../scripts/testkit/fixed-secrets.ts';
import { runCli } from '../helpers.ts';

const inv = readFileSync(EXAMPLE, 'utf8');
const HEADER = 'id,serial,mac,region,site,profile,role,address,ssh_host,notes';
const col = (name: string) => HEADER.split(',').indexOf(name) + 1;

function problems(csv: string, opts: { allowNewSites?: boolean } = {}): string[] {
  try {
    importCsv(csv, 'd.csv', inv, 'inv.yaml', opts);
  } catch (e) {
    if (e instanceof InventoryError) return e.format().split('\n');
    throw e;
  }
  return [];
}

describe('inventory import: problems at the CSV row and column', () => {
  it('adds valid rows, keeping comments, and the result loads with the new devices', () => {
    const csv = `${HEADER}\nnew-001,20000001,dc:a6:32:99:00:01,kr-south,ulsan-plant-1,,,10.20.1.50/24,,"line 3, station 7: yes"\nnew-002,20000002,dc:a6:32:99:00:02,eu-central,brno-warehouse-1,rpi4-4g,,,,\n`;
    const { text, devices } = importCsv(csv, 'd.csv', inv, 'inv.yaml');
    expect(devices.map((d) => d.row)).toEqual([2, 3]);
    expect(text).toContain('# the domain industry'); // comments kept
    const fleet = loadInventoryBytes(Buffer.from(text), 'inv.yaml');
    expect(fleet.devices.find((d) => d.id === 'new-001')).toMatchObject({ siteId: 'kr-south/ulsan-plant-1', notes: 'line 3, station 7: yes' });
    expect(fleet.devices.find((d) => d.id === 'new-002')).toMatchObject({ profileName: 'rpi4-4g' });
  });

  it('reports an invalid id, MAC, role or address at its own cell', () => {
    const csv = `${HEADER}\nBad_ID,20000001,dc:a6:32:99:00:01,kr-south,ulsan-plant-1,,,10.20.1.50/24,,\nnew-002,20000002,zz:11:22:33:44:55,kr-south,ulsan-plant-1,,boss,10.20.1.300/24,,\n`;
    const p = problems(csv);
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:2:${col('id')}: id "Bad_ID": device id must be a DNS label`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('mac')}: mac "zz:11:22:33:44:55": must be a MAC address`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('role')}: role "boss"`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('address')}: address "10\\.20\\.1\\.300/24"`)));
    expect(p.every((l) => l.startsWith('d.csv:'))).toBe(true);
  });

  it('reports duplicates within the CSV and against the inventory, naming where the value is already used', () => {
    const fleet = loadInventoryBytes(Buffer.from(inv), 'inv.yaml');
    const first = fleet.devices.find((d) => d.network.mode === 'static')!;
    const idLine = inv.split('\n').findIndex((l) => l.includes(`id: ${first.id}`)) + 1;
    const csv = [
      HEADER,
      `${first.id},20000001,dc:a6:32:99:00:01,kr-south,ulsan-plant-1,,,10.20.1.50/24,,`,
      `new-002,${first.serial},${first.mac.toUpperCase().replace(/:/g, '-')},kr-south,ulsan-plant-1,,,${first.network.mode === 'static' ? first.network.address : ''},,`,
      'new-003,20000003,dc:a6:32:99:00:01,kr-south,ulsan-plant-1,,,10.20.1.50/24,,',
      'new-003,20000004,dc:a6:32:99:00:04,kr-south,ulsan-plant-1,,,10.20.1.54/24,,',
    ].join('\n');
    const p = problems(csv);
    expect(p).toContain(`d.csv:2:${col('id')}: id "${first.id}" is already used by device "${first.id}" (inv.yaml:${idLine}); ids must be unique across the fleet`);
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('serial')}: serial "${first.serial}" is already used by device "${first.id}"`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('mac')}: mac "${first.mac}" is already used by device "${first.id}"`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('address')}: address "[0-9.]+" is already used by device "${first.id}"`)));
    expect(p).toContain(`d.csv:4:${col('mac')}: mac "dc:a6:32:99:00:01" is already used at row 2 of this CSV; MAC addresses must be unique across the fleet`);
    expect(p).toContain(`d.csv:4:${col('address')}: address "10.20.1.50" is already used at row 2 of this CSV; static addresses must be unique across the fleet`);
    expect(p).toContain(`d.csv:5:${col('id')}: id "new-003" is already used at row 4 of this CSV; ids must be unique across the fleet`);
  });

  it('refuses a region or site the inventory does not have, listing the known ones, unless --allow-new-sites', () => {
    const csv = `${HEADER}\nnew-001,20000001,dc:a6:32:99:00:01,kr-south,ulsan-plant-9,,,,,\nnew-002,20000002,dc:a6:32:99:00:02,eu-west,lyon-1,,,,,\nnew-003,20000003,dc:a6:32:99:00:03,kr-south,ulsan-plant-1,rpi9,,10.20.1.53/24,,\n`;
    const p = problems(csv);
    expect(p).toContain(`d.csv:2:${col('site')}: site "ulsan-plant-9" is not in region "kr-south"; its sites: ulsan-plant-1, changwon-plant-2 (or pass --allow-new-sites to create it)`);
    expect(p).toContain(`d.csv:3:${col('region')}: region "eu-west" is not in the inventory; known regions: kr-south, eu-central (or pass --allow-new-sites to create it)`);
    expect(p).toContain(`d.csv:4:${col('profile')}: profile "rpi9" is not in the inventory; known profiles: rpi4-2g, rpi4-4g, ipc-4g`);
    // allowed: the new region and site are created (the profile typo is still an error)
    expect(problems(csv, { allowNewSites: true })).toEqual([`d.csv:4:${col('profile')}: profile "rpi9" is not in the inventory; known profiles: rpi4-2g, rpi4-4g, ipc-4g`]);
    const ok = importCsv(csv.split('\n').slice(0, 3).join('\n'), 'd.csv', inv, 'inv.yaml', { allowNewSites: true });
    expect(YAML.parse(ok.text).regions['eu-west'].sites['lyon-1'].devices[0].id).toBe('new-002');
  });

  it('maps what only the merged inventory shows back to the row (and the column the message names)', () => {
    const csv = `${HEADER}\nnew-001,20000001,dc:a6:32:99:00:01,kr-south,ulsan-plant-1,,,,,\nnew-002,20000002,dc:a6:32:99:00:02,kr-south,changwon-plant-2,ipc-4g,server,10.30.1.99/24,,\n`;
    const p = problems(csv);
    expect(p).toContain(`d.csv:2:${col('address')}: device "new-001" uses a static network but has no "address" (like 10.20.1.11/24)`);
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`^d\\.csv:3:${col('role')}: site "changwon-plant-2" has 2 agent\\(s\\) and 2 active servers`)));
    expect(p.every((l) => l.startsWith('d.csv:'))).toBe(true);
  });

  it('the command exits 2 and writes nothing on a problem; writes the inventory when all rows are good', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'import-'));
    writeFileSync(path.join(dir, 'inv.yaml'), inv);
    writeFileSync(path.join(dir, 'bad.csv'), `${HEADER}\nnew-001,20000001,dc:a6:32:99:00:01,kr-south,typo-site,,,,,\n`);
    const bad = await runCli(['inventory', 'import', 'bad.csv', '-i', 'inv.yaml'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`bad.csv:2:${col('site')}: site "typo-site" is not in region "kr-south"`);
    expect(readFileSync(path.join(dir, 'inv.yaml'), 'utf8')).toBe(inv);
    writeFileSync(path.join(dir, 'good.csv'), `${HEADER}\nnew-001,20000001,dc:a6:32:99:00:01,eu-central,brno-warehouse-1,,,,,\n`);
    const good = await runCli(['inventory', 'import', 'good.csv', '-i', 'inv.yaml'], { cwd: dir });
    expect(good.code).toBe(0);
    expect(loadInventoryBytes(readFileSync(path.join(dir, 'inv.yaml')), 'inv.yaml').devices.some((d) => d.id === 'new-001')).toBe(true);
  });
});
