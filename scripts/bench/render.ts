// npm run bench:render — render a generated 2,000-device fleet with fixed secrets (keys already present,
// as in a rebuild) and print devices/s beside two anchors measured in the same run: parsing + validating
// the same inventory, and JSON.stringify of the resolved fleet. Goal: 2,000 devices in under 10 s.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { generateInventory } from '../inventory/generate.ts';
import { loadInventoryBytes } from '../inventory/load.ts';
import { renderDevice, type DeviceSecrets } from '../render/device.ts';
import { prepareFlux } from '../pipeline/flux.ts';
import { fixedSecretsFor, withFlux } from '../testkit/fixed-secrets.ts';

const N = Number(process.env.BENCH_DEVICES ?? 2000);
const ms = (t0: number) => performance.now() - t0;

const yaml = Buffer.from(generateInventory(N));
let t = performance.now();
const fleet = loadInventoryBytes(yaml, `synthetic-${N}.yaml`);
const parseMs = ms(t);
t = performance.now();
const json = JSON.stringify(fleet);
const stringifyMs = ms(t);

// keys already present: made before the clock starts
const secrets = new Map<string, DeviceSecrets>(fleet.active.map((d) => [d.id, fixedSecretsFor(d)]));

function renderAll(f: typeof fleet, opts?: Parameters<typeof renderDevice>[3]): { ms: number; files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const t0 = performance.now();
  for (const d of f.active) {
    for (const x of renderDevice(f, d, secrets.get(d.id)!, opts)) {
      files++;
      bytes += x.bytes.length;
    }
  }
  return { ms: ms(t0), files, bytes };
}

renderAll({ ...fleet, active: fleet.active.slice(0, 20) }); // warm up the JIT and the program sources
const plain = renderAll(fleet);
const fluxFleet = withFlux(fleet);
const stage = await prepareFlux(fluxFleet, 'synthetic.yaml');
const flux = renderAll(fluxFleet, stage.render);

const rate = (r: { ms: number }) => (fleet.active.length / (r.ms / 1000)).toFixed(0);
const mib = (b: number) => (b / 1048576).toFixed(1);
console.log(`render benchmark: ${fleet.active.length} devices, node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}`);
console.log(`anchor  parse + validate the inventory (${mib(yaml.length)} MiB YAML):  ${parseMs.toFixed(0)} ms`);
console.log(`anchor  JSON.stringify of the resolved fleet (${mib(json.length)} MiB):      ${stringifyMs.toFixed(0)} ms`);
console.log(
  `render  seed + bundle, no Flux:   ${plain.ms.toFixed(0)} ms = ${rate(plain)} devices/s (${plain.files} files, ${mib(plain.bytes)} MiB) = ${(plain.ms / parseMs).toFixed(1)}x parse+validate`,
);
console.log(`render  seed + bundle + Flux:     ${flux.ms.toFixed(0)} ms = ${rate(flux)} devices/s (${flux.files} files, ${mib(flux.bytes)} MiB) = ${(flux.ms / parseMs).toFixed(1)}x parse+validate`);
console.log(`goal    ${fleet.active.length} devices < 10 s: ${Math.max(plain.ms, flux.ms) < 10_000 ? 'met' : 'NOT met'}`);
