// Kill key generation at random moments (SIGKILL: no cleanup runs) and show keys/ always holds either the
// old state or the new one: every listed identity loads and cross-checks, nothing half-written is used,
// and the next run completes the job.
import { requireTools } from '../../scripts/testkit/tools.ts';
import { describe, expect, it, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { initKeys } from '../../scripts/keys/init.ts';
import { openKeyStore } from '../../scripts/keys/store.ts';
import { tempDir } from './helpers.ts';
const HAVE_TOOLS = requireTools(['gpg', 'ssh-keygen'], 'test/keys/atomic.test.ts');

const root = tempDir();
afterAll(() => fs.rm(root, { recursive: true, force: true }));
const child = path.resolve('test/keys/fixtures/generate-child.ts');

function runAndKill(dir: string, n: number, killAfterMs: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    // node itself with the tsx loader, not the tsx CLI: that one runs node as a grandchild, which SIGKILL would miss
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    p.stdout.on('data', (d) => {
      out += d;
      if (!timer && out.includes('started')) timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    });
    p.on('error', reject);
    p.on('exit', () => {
      clearTimeout(timer);
      resolve(out.includes('finished') ? 'finished' : 'killed');
    });
  });
}

async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (e.name.startsWith('.edgeforge-tmp-')) out.push(e.name);
  return out;
}

describe.runIf(HAVE_TOOLS)('keys survive being killed mid-write', () => {
  it('after each SIGKILL every committed identity loads, and the next run finishes the job', async () => {
    const dir = path.join(root, 'keys');
    await initKeys({ dir, exampleAdmin: true });
    const N = 150;
    const outcomes: string[] = [];
    let seenDevices = 0;
    for (const delay of [150, 500, 900, 1400]) {
      outcomes.push(await runAndKill(dir, N, delay + Math.floor(Math.random() * 150)));
      const ks = await openKeyStore({ dir, workers: 0 });
      const list = await ks.listIdentities();
      expect(list.devices.length).toBeGreaterThanOrEqual(seenDevices); // never goes backwards
      seenDevices = list.devices.length;
      for (const d of list.devices) expect(d.status, d.id).toBe('ok');
      // everything listed decrypts and matches its public record (loadFrom cross-checks fingerprints)
      const loaded = await ks.ensureDeviceIdentities(list.devices.map((d) => d.id));
      expect(loaded.created).toEqual([]);
      for (const d of list.devices) expect(loaded.identities.get(d.id)!.generation).toBe(d.generation);
      await ks.close();
    }
    expect(outcomes).toContain('killed');
    // a final, uninterrupted run completes the rest and sweeps what killed runs left behind
    const ks = await openKeyStore({ dir, workers: 0 });
    const ids = Array.from({ length: N }, (_, i) => `k-${String(i).padStart(4, '0')}`);
    const all = await ks.ensureDeviceIdentities(ids);
    expect(all.identities.size).toBe(N);
    await initKeys({ dir, exampleAdmin: true }); // keys init sweeps leftovers of killed runs (a generating run does too)
    expect(await tempFiles(dir)).toEqual([]);
    await ks.close();
  }, 120_000);
});
