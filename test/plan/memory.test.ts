// Memory budgets that hold on real boards: the budget counts the RAM Linux can use (per board, overridable with
// usableRamMiB), and every command that reads the inventory refuses a profile and role that leave less than the
// floor for workloads — at the profile's line and column, exit 2, nothing written.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { usableRam } from '../../scripts/inventory/boards.ts';
import { loadInventoryBytes } from '../../scripts/inventory/load.ts';
import { gitopsAgent, memoryBudget, memoryProblems, WORKLOAD_FLOOR_MIB } from '../../scripts/render/plan/memory.ts';
import { runCli } from '../helpers.ts';

const example = readFileSync('inventory/example.yaml', 'utf8');
// a 1 GB Pi 4 profile for brno's devices (single-node servers)
const oneGig = example
  .replace('profiles:\n', 'profiles:\n  rpi4-1g:\n    board: raspberry-pi-4\n    arch: arm64\n    ramMiB: 1024\n    storage: { medium: sd, sizeGB: 32 }\n    baseImage: { layout: raspi-mbr }\n')
  .replace('        encryption: { mode: none }   # documented fallback', '        profile: rpi4-1g\n        encryption: { mode: none }   # documented fallback');

function workdir(inventory: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ef-mem-'));
  writeFileSync(path.join(dir, 'inventory.yaml'), inventory);
  copyFileSync('inventory/schema.json', path.join(dir, 'schema.json'));
  return dir;
}

describe('usable RAM', () => {
  it('a 2 GB Pi 4 gives Linux less than 2048 MiB: the GPU firmware share and page descriptors', () => {
    expect(usableRam({ board: 'raspberry-pi-4', ramMiB: 2048 })).toMatchObject({ mib: 2048 - 76 - 32 });
    expect(usableRam({ board: 'generic-uefi', ramMiB: 4096 }).mib).toBe(4096 - 64);
    expect(usableRam({ board: 'raspberry-pi-4', ramMiB: 2048, usableRamMiB: 1800 })).toEqual({ mib: 1800, basis: "the profile's usableRamMiB (measured MemTotal)" });
  });

  it('the budget adds up to usable RAM, and the GitOps agent is counted against 100 MB', () => {
    const fleet = loadInventoryBytes(Buffer.from(example), 'x.yaml');
    const d = fleet.active.find((x) => x.id === 'ulsan1-line1-001')!;
    const b = memoryBudget(d, fleet);
    expect(b.ramMiB).toBe(1940);
    expect(b.parts.reduce((a, p) => a + p.mib, 0) + b.workloadsMiB).toBe(1940);
    const agent = gitopsAgent(d, fleet);
    expect(agent).toMatchObject({ requestMiB: 44 + 52 + 24, limitMiB: 128 + 192 + 64, targetMiB: 95 });
    expect(memoryProblems(fleet)).toEqual([]);
  });
});

describe('a profile that leaves too little for workloads is refused', () => {
  it(`ramMiB: 1024 as a single-node server: validate says where (FILE:LINE:COL), exit 2`, async () => {
    const dir = workdir(oneGig);
    const r = await runCli(['validate', '-i', 'inventory.yaml'], { cwd: dir });
    expect(r.code).toBe(2);
    const line = oneGig.split('\n').findIndex((l) => l === '    ramMiB: 1024') + 1;
    expect(r.stderr).toContain(`inventory.yaml:${line}:13: profile "rpi4-1g" as a single-node server (e.g. brno1-dock-001) leaves `);
    expect(r.stderr).toMatch(new RegExp(`leaves -\\d+ MiB for workloads, less than the ${WORKLOAD_FLOOR_MIB} MiB floor: 932 MiB usable \\(of 1024 MiB nominal\\)`));
  });

  it('build and plan refuse it too, and write nothing', async () => {
    const dir = workdir(oneGig);
    const b = await runCli(['build', '-i', 'inventory.yaml', '-o', 'out', '--keys', 'keys'], { cwd: dir });
    expect(b.code).toBe(2);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    const p = await runCli(['plan', '-i', 'inventory.yaml', '--appendix', 'a.md'], { cwd: dir });
    expect(p.code).toBe(2);
    expect(existsSync(path.join(dir, 'a.md'))).toBe(false);
  });

  it('a measured usableRamMiB is what counts, and the refusal points at it', async () => {
    const fleet = loadInventoryBytes(Buffer.from(oneGig), 'x.yaml');
    expect(memoryProblems(fleet).map((m) => m.profile)).toEqual(['rpi4-1g']);
    // the example's 2 GB profile with a measured MemTotal too small for a server: refused at usableRamMiB
    const measured = example.replace('    ramMiB: 2048\n', '    ramMiB: 2048\n    usableRamMiB: 1200\n');
    const dir = workdir(measured);
    const r = await runCli(['validate', '-i', 'inventory.yaml'], { cwd: dir });
    expect(r.code).toBe(2);
    const line = measured.split('\n').findIndex((l) => l === '    usableRamMiB: 1200') + 1;
    expect(r.stderr).toContain(`inventory.yaml:${line}:19: profile "rpi4-2g" as a single-node server`);
    expect(r.stderr).toContain('1200 MiB usable (usableRamMiB)');
  });
});
