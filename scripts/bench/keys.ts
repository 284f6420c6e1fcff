// npm run bench:keys [-- N]  — fleet key generation and reload for N devices (default 2,000), beside an anchor
// measured in the same run: the shell way (ssh-keygen ×2 + gpg --quick-gen-key + gpg --encrypt per device,
// and gpg --decrypt per device for reload) on a sample, extrapolated to N.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initKeys } from '../keys/init.ts';
import { openKeyStore } from '../keys/store.ts';
import { defaultPoolSize } from '../keys/pool.ts';

const N = Number(process.argv[2] ?? process.env.BENCH_DEVICES ?? 2000);
const SAMPLE = Number(process.env.BENCH_ANCHOR_SAMPLE ?? 20);
const SITES = Math.max(1, Math.round(N / 20));
const root = mkdtempSync(path.join(os.tmpdir(), 'ef-bench-keys-'));
const dir = path.join(root, 'keys');
const ids = Array.from({ length: N }, (_, i) => `dev-${String(i).padStart(5, '0')}`);
const siteIds = Array.from({ length: SITES }, (_, i) => `region-${i % 4}/site-${String(i).padStart(4, '0')}`);
const secs = (t0: number) => (performance.now() - t0) / 1000;

try {
  await initKeys({ dir, exampleAdmin: true });
  const workers = defaultPoolSize();

  let t0 = performance.now();
  const ks = await openKeyStore({ dir, workers });
  const gen = await ks.ensureDeviceIdentities(ids);
  await ks.ensureSiteIdentities(siteIds);
  const genS = secs(t0);
  await ks.close();
  if (gen.created.length !== N) throw new Error(`expected ${N} new identities, got ${gen.created.length}`);

  t0 = performance.now();
  const ks2 = await openKeyStore({ dir, workers });
  const again = await ks2.ensureDeviceIdentities(ids);
  await ks2.ensureSiteIdentities(siteIds);
  const loadS = secs(t0);
  await ks2.close();
  if (again.created.length !== 0 || again.identities.size !== N) throw new Error('reload regenerated keys');
  const rssMiB = process.resourceUsage().maxRSS / 1024;

  // anchor: the same material made with the standard tools, one device at a time
  const a = path.join(root, 'anchor');
  const gpgHome = path.join(a, 'gnupg');
  execFileSync('mkdir', ['-p', '-m', '700', gpgHome]);
  const gpg = (args: string[], input?: string) =>
    execFileSync('gpg', ['--homedir', gpgHome, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { input, stdio: ['pipe', 'pipe', 'ignore'] });
  gpg(['--quick-gen-key', 'anchor admin <admin@anchor.invalid>', 'future-default', 'default', 'never']);
  const bundle = path.join(a, 'bundle');
  writeFileSync(bundle, 'x'.repeat(4000)); // about the size of a device's private bundle
  t0 = performance.now();
  for (let i = 0; i < SAMPLE; i++) {
    for (const k of ['host', 'deploy']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${k}@a${i}`, '-f', path.join(a, `${k}-${i}`)]);
    gpg(['--quick-gen-key', `anchor dev ${i} <a${i}@anchor.invalid>`, 'future-default', 'default', 'never']);
    gpg(['--trust-model', 'always', '-r', 'admin@anchor.invalid', '-e', '-o', path.join(a, `b-${i}.gpg`), bundle]);
  }
  const anchorGenS = (secs(t0) / SAMPLE) * N;
  t0 = performance.now();
  for (let i = 0; i < SAMPLE; i++) gpg(['-d', '-o', path.join(a, `b-${i}.out`), path.join(a, `b-${i}.gpg`)]);
  const anchorLoadS = (secs(t0) / SAMPLE) * N;
  execFileSync('gpgconf', ['--homedir', gpgHome, '--kill', 'gpg-agent']);

  const rate = (s: number) => (N / s).toFixed(0);
  const lines = [
    `keys bench: ${N} devices + ${SITES} sites, ${workers} worker thread(s), ${os.availableParallelism?.() ?? os.cpus().length} CPUs, node ${process.version}`,
    `first generation: ${genS.toFixed(1)} s  (${rate(genS)} devices/s)   anchor ssh-keygen×2 + gpg gen + gpg encrypt: ${anchorGenS.toFixed(1)} s extrapolated from ${SAMPLE} (${rate(anchorGenS)} devices/s)  → ${(anchorGenS / genS).toFixed(1)}× faster`,
    `reload (decrypt + check): ${loadS.toFixed(1)} s  (${rate(loadS)} devices/s)   anchor gpg --decrypt: ${anchorLoadS.toFixed(1)} s extrapolated (${rate(anchorLoadS)} devices/s)  → ${(anchorLoadS / loadS).toFixed(1)}× faster`,
    `peak RSS: ${rssMiB.toFixed(0)} MiB (limit 1024)`,
    `targets: first generation < 60 s ${genS < 60 ? 'OK' : 'MISSED'}; reload < 20 s ${loadS < 20 ? 'OK' : 'MISSED'}; memory ${rssMiB < 1024 ? 'OK' : 'MISSED'}`,
  ];
  console.log(lines.join('\n'));
} finally {
  rmSync(root, { recursive: true, force: true });
}
