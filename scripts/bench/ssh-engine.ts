// The provision engine alone, for bench:ssh: load the inventory and manifest, time provision() itself
// (no CLI start-up), print {ms, devices} as JSON. Run under /usr/bin/time for its peak RSS.
import path from 'node:path';
import { loadInventoryFile } from '../inventory/load.ts';
import { provision } from '../provision/engine.ts';
import { readManifest } from '../manifest/read.ts';
import { JsonReporter } from '../ui/reporter.ts';

const [inv, out, keys, conc] = process.argv.slice(2);
const fleet = await loadInventoryFile(inv);
const manifest = await readManifest(path.join(out, 'manifest.json'));
const t0 = performance.now();
const devices = await provision({
  fleet,
  manifest,
  outDir: out,
  keysDir: keys,
  baseDir: path.dirname(inv),
  concurrency: Number(conc),
  reporter: new JsonReporter(),
  env: { ...process.env, SSH_AUTH_SOCK: '' },
});
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, devices }) + '\n');
