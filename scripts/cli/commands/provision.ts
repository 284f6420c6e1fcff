// `edgeforge provision`: options -> scripts/provision/engine.ts. Everything else lives there.
import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { provision, refusedDevices, devicesToProvision, DEFAULT_CONCURRENCY, DEFAULT_RETRIES } from '../../provision/engine.ts';
import { loadManifest } from '../../provision/manifest.ts';
import { PHASES, type Phase } from '../../provision/errors.ts';
import { DEFAULT_TIMEOUTS } from '../../provision/context.ts';
import { makeReporter, summarize } from '../../ui/reporter.ts';
import { groupedSkips } from '../../ui/view.ts';
import { UsageError } from '../../util/errors.ts';

function parseTimeouts(values: string[]): Partial<Record<Phase, number>> {
  const out: Partial<Record<Phase, number>> = {};
  for (const v of values.flatMap((s) => s.split(','))) {
    const m = /^([a-z]+)=(\d+(?:\.\d+)?)$/.exec(v.trim());
    if (!m || !PHASES.includes(m[1] as Phase) || Number(m[2]) <= 0) {
      throw new UsageError(`--timeout takes PHASE=SECONDS with PHASE one of ${PHASES.join(', ')}, e.g. --timeout apply=3600 (got "${v}")`);
    }
    out[m[1] as Phase] = Math.round(Number(m[2]) * 1000);
  }
  return out;
}

export const provisionCommand = command('provision', 'apply the first-boot program to running devices over SSH, in parallel', {
  usage: 'provision [--only ID,...] [--dry-run] [--trust-new-host-keys]',
  description: `Delivers each device's first-boot bundle from the signed build in OUT and runs it, through the phases
connect (host key checked against ssh.hostKey, keys/known_hosts/<id> or the key edgeforge generated for the
device), preflight (read only: arch, RAM, free disk, WireGuard, sudo, what is applied), upload (SFTP, then
sha256 checked on the device), apply (first-boot program as root via sudo; its log streams into
OUT/logs/provision/<id>.log) and verify (the device records this bundle's hash). Devices already at the
build's bundle hash are skipped, so a rerun converges. Transient network errors are retried with backoff;
host-key refusals and authentication failures never are. Jump hosts: ssh.jumpHost; agents: SSH_AUTH_SOCK;
sudo passwords: the variable named by ssh.sudoPasswordEnv.
A full run skips active devices whose sites have SSH closed (listed, each with its reason, in --json too).
Exit 0 all done (or already at the build's bundle), 1 some devices failed (the others completed) or none was
delivered, 2 bad usage or input, or not one selected device could be tried (every site has SSH closed; devices
not in the build).`,
  options: {
    only: { type: 'string', multiple: true, value: 'ID,...', description: 'provision only these devices' },
    'dry-run': { type: 'boolean', default: false, description: 'stop after preflight (reads only) and print the plan' },
    'trust-new-host-keys': { type: 'boolean', default: false, description: 'record host keys of devices that have none pinned into KEYS/known_hosts/<id> (a mismatch is still refused)' },
    force: { type: 'boolean', default: false, description: 'apply even to devices already at the current bundle hash' },
    retries: { type: 'string', value: 'N', description: `retries after transient network errors (default ${DEFAULT_RETRIES})` },
    timeout: { type: 'string', multiple: true, value: 'PHASE=S', description: `per-phase timeout in seconds (defaults: ${PHASES.map((p) => `${p}=${DEFAULT_TIMEOUTS[p] / 1000}`).join(',')})` },
    'allow-unsigned': { type: 'boolean', default: false, description: 'accept a build without manifest.json.asc (tests only)' },
  },
  examples: ['edgeforge provision -o images/out --only ulsan1-line1-001 --dry-run', 'edgeforge provision -o images/out --concurrency 64 --json > provision.json'],
  async run(ctx) {
    const { io, common } = ctx;
    const only = ((ctx.options.only as string[] | undefined) ?? [])
      .flatMap((s) => s.split(','))
      .map((s) => s.trim())
      .filter(Boolean);
    if (ctx.options.only && only.length === 0) throw new UsageError('--only needs device ids, e.g. --only ulsan1-line1-001,ulsan1-line1-002');
    let retries = DEFAULT_RETRIES;
    if (typeof ctx.options.retries === 'string') {
      retries = Number(ctx.options.retries);
      if (!Number.isInteger(retries) || retries < 0 || retries > 20) throw new UsageError(`--retries must be a whole number from 0 to 20, not "${ctx.options.retries}"`);
    }
    const timeouts = parseTimeouts((ctx.options.timeout as string[] | undefined) ?? []);
    const fleet = await loadFleet(ctx);
    devicesToProvision({ fleet, only }); // a SelectionError: exit 2, each named device with its reason
    // a full run skips devices whose firewall accepts no SSH (each listed with its reason); when that is every
    // one of them, nothing can be done: exit 2 before anything is read or tried
    const refused = refusedDevices({ fleet, only });
    if (refused.length && refused.length === fleet.active.length) {
      const error = `none of the ${refused.length} active device(s) can be reached over SSH: their sites have no managementSubnet and the inventory does not open SSH to everyone (ssh: {allowFrom: any}). Deliver them by seed card, or set one of them. Nothing was done.`;
      if (common.json) io.out(JSON.stringify({ devices: refused, error }, null, 2));
      for (const l of groupedSkips(refused)) io.err(l);
      io.err(`provision: ${error}`);
      return summarize(refused).exitCode;
    }
    const outDir = path.resolve(io.cwd, common.out);
    const keysDir = path.resolve(io.cwd, common.keys);
    // a ManifestError is a UserError: exit 2 with its message
    const { manifest } = await loadManifest(outDir, keysDir, { allowUnsigned: Boolean(ctx.options['allow-unsigned']) });
    const concurrency = common.concurrency ?? DEFAULT_CONCURRENCY;
    const reporter = makeReporter({ json: common.json, isTTY: io.isTTY, err: io.err });
    const results = await provision({
      fleet,
      manifest,
      outDir,
      keysDir,
      baseDir: path.dirname(path.resolve(io.cwd, common.inventory)),
      only,
      dryRun: Boolean(ctx.options['dry-run']),
      trustNewHostKeys: Boolean(ctx.options['trust-new-host-keys']),
      force: Boolean(ctx.options.force),
      concurrency,
      retries,
      timeouts,
      env: io.env,
      reporter,
    });
    const ordered = await reporter.end();
    const s = summarize(ordered.length ? ordered : results);
    if (common.json) io.out(JSON.stringify({ devices: ordered }, null, 2));
    else io.err(`provision${ctx.options['dry-run'] ? ' (dry run)' : ''}: ${s.line}; logs in ${path.join(common.out, 'logs', 'provision')}/`);
    return s.exitCode;
  },
});
