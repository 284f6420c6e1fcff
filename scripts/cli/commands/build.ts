// `edgeforge build`: options -> scripts/pipeline/build/ (buildFleet). Everything else lives there.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { sourceDateEpoch } from '../../pipeline/inputs/epoch.ts';
import { parseShard } from '../../pipeline/select/shard.ts';
import { changedSince } from '../../pipeline/select/devices.ts';
import { buildFleet } from '../../pipeline/build/index.ts';
import { makeReporter, summarize } from '../../ui/reporter.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { nextSteps } from '../next-steps.ts';
import { k3sInstallPinProblem } from '../../render/k3s/install.ts';
import { timeWarnings } from '../../pipeline/inputs/expiries.ts';
import { clock } from '../clock.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const EXAMPLE_INVENTORY = path.join(REPO, 'inventory/example.yaml');

export const buildCommand = command('build', 'render every device: seeds, configs, secrets, seed images, disk deltas, signed manifest', {
  usage: 'build [--only ID,...] [--shard K/N] [--changed-since REV] [--base-image FILE]',
  description: `Renders every active device into OUT/devices/<id>/ (NoCloud seed, first-boot bundle, seed.img; with
--base-image also disk.delta), then writes OUT/manifest.json last, signed by the fleet's build key
(manifest.json.asc, signing-key.asc). Device identities come from --keys (created on first use, stored
encrypted to the admins). Same inventory + keys + SOURCE_DATE_EPOCH give byte-identical output.
Exit 0 all built (or unchanged since the previous build), 1 some devices failed (the others are complete) or
none was built, 2 bad input (nothing written; also --only naming a device it cannot build, or adding to a previous
build it cannot trust: a manifest whose signature does not check out, or of another inventory or SOURCE_DATE_EPOCH).`,
  options: {
    only: {
      type: 'string',
      multiple: true,
      value: 'ID,...',
      description: 'build only these devices (the manifest keeps the others: refused unless the previous build is signed and of the same inventory and epoch)',
    },
    'base-image': { type: 'string', value: 'FILE', description: 'base OS image: also write per-device disk deltas against it' },
    shard: { type: 'string', value: 'K/N', description: 'build shard K of N (stable hash of the id); join shards with `manifest merge`' },
    'changed-since': { type: 'string', value: 'REV', description: 'build only devices whose rendered inputs changed since git revision REV' },
    force: { type: 'boolean', default: false, description: 'render every device, even those whose inputs are unchanged since the previous build' },
    'example-admin': { type: 'boolean', default: false, description: 'no admin keys yet: create an EXAMPLE admin key (demos only; automatic for inventory/example.yaml)' },
    strict: { type: 'boolean', default: false, description: 'refuse to build when a pin runs out with time (end-of-life K3s line, expiring broker or registry CA)' },
  },
  examples: ['SOURCE_DATE_EPOCH=1767225600 edgeforge build -i inventory/example.yaml -o images/out --only ulsan1-line1-001,ulsan1-line1-002'],
  async run(ctx) {
    const { io, common } = ctx;
    const only = ((ctx.options.only as string[] | undefined) ?? [])
      .flatMap((s) => s.split(','))
      .map((s) => s.trim())
      .filter(Boolean);
    if (ctx.options.only && only.length === 0) throw new UsageError('--only needs device ids, e.g. --only ulsan1-line1-001,ulsan1-line1-002');
    const fleet = await loadFleet(ctx);
    const inventoryPath = path.resolve(io.cwd, common.inventory);
    let shard: { k: number; n: number } | undefined;
    if (ctx.options.shard !== undefined) {
      if (only.length || ctx.options['changed-since']) throw new UsageError('--shard builds a fixed part of the fleet; it does not combine with --only or --changed-since');
      try {
        shard = parseShard(ctx.options.shard as string);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    if (ctx.options['changed-since'] !== undefined) {
      if (only.length) throw new UsageError('--changed-since chooses the devices itself; drop --only');
      const rev = ctx.options['changed-since'] as string;
      const { build, gone } = await changedSince(fleet, common.inventory, rev);
      if (!common.json) io.err(`--changed-since ${rev}: ${build.length} device(s) to build${gone.length ? `, ${gone.length} revoked or removed (${gone.join(', ')}): dropped from the manifest` : ''}`);
      if (!build.length) {
        if (common.json) io.out(JSON.stringify({ devices: [], changedSince: rev }, null, 2));
        else io.err('nothing to build');
        return 0;
      }
      only.push(...build);
    }
    const { epoch, from } = await sourceDateEpoch(io.env, inventoryPath);
    const note = (line: string) => {
      if (!common.json) io.err(line);
    };
    const loud = (line: string) => io.err(line); // warnings about keys show even with --json (on stderr)
    const pin = k3sInstallPinProblem(fleet);
    if (pin) loud(`${common.inventory}: warning: ${pin}`);
    const timed = await timeWarnings(fleet, inventoryPath, clock(io));
    if (timed.length && ctx.options.strict) throw new UserError(`${timed.map((w) => `${common.inventory}: error: ${w}`).join('\n')}\nrefused with --strict; nothing was built`);
    for (const w of timed) loud(`${common.inventory}: warning: ${w}`);
    const reporter = makeReporter({ json: common.json, isTTY: io.isTTY, err: io.err });
    const baseGiven = ctx.options['base-image'] as string | undefined;
    note(`build: ${fleet.name}, SOURCE_DATE_EPOCH=${epoch} (from ${from}), out ${common.out}`);
    const r = await buildFleet({
      fleet,
      inventoryPath,
      keysDir: path.resolve(io.cwd, common.keys),
      exampleAdmin: inventoryPath === EXAMPLE_INVENTORY || Boolean(ctx.options['example-admin']),
      warn: loud,
      outDir: path.resolve(io.cwd, common.out),
      only: only.length ? only : undefined,
      shard,
      incremental: ctx.options['changed-since'] !== undefined,
      baseImage: baseGiven ? { given: baseGiven, path: path.resolve(io.cwd, baseGiven) } : undefined,
      sourceDateEpoch: epoch,
      concurrency: common.concurrency ?? 4,
      reporter,
      force: Boolean(ctx.options.force),
    });
    const s = summarize(r.results);
    const timings = Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
    if (common.json)
      io.out(JSON.stringify({ devices: r.results, manifest: path.join(common.out, 'manifest.json'), signedBy: r.signed?.fingerprint ?? null, skipped: r.skipped, timings, warnings: timed }, null, 2));
    else {
      const unchanged = r.skipped ? ` (${r.skipped} unchanged since the previous build: not rendered)` : '';
      io.err(`build: ${s.line}${unchanged}; ${path.join(common.out, 'manifest.json')} lists ${r.manifest.devices.length} device(s), signed by ${r.signed?.fingerprint}`);
      if (io.env.EDGEFORGE_TIMINGS)
        io.err(
          `build: seconds per stage: ${Object.entries(timings)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
      const ok = r.results.find((x) => x.status !== 'failed'); // a skipped (unchanged) device is built too
      const built = ok && r.manifest.devices.find((d) => d.id === ok.id);
      io.err(['', ...nextSteps(common, built && { id: built.id, hasDisk: built.artifacts.some((a) => a.kind === 'disk-delta') })].join('\n'));
    }
    return s.exitCode;
  },
});
