// `edgeforge status` (read the fleet's statuses from the broker) and `status broker-config` (the broker's
// users, ACL and TLS listener). The operator's broker password comes from a file or an environment
// variable, never from the command line, and is never printed.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { command, type RunContext } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { BROKER_URL_RULE, parseBrokerUrl } from '../../inventory/broker-url.ts';

export const STATUS_PASSWORD_ENV = 'EDGEFORGE_STATUS_PASSWORD';

/** 1 when anyone needs a person (a fleet none of whose devices reports is all "never seen": 1 too); 2 when there is
 *  no active device to report on (nothing could be read for anyone); else 0 */
export function statusExitCode(s: { attention: unknown[]; inactiveNeedsPerson: unknown[]; devices: unknown[] }): number {
  if (s.attention.length || s.inactiveNeedsPerson.length) return 1;
  return s.devices.length ? 0 : 2;
}

/** 90s, 15m, 1h, 1h30m -> seconds */
export function parseDuration(s: string, what: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(s);
  if (!s || !m || !(m[1] || m[2] || m[3])) throw new UsageError(`${what} must be a duration like 90s, 20m, 1h or 1h30m, not "${s}"`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** The admin password from --password-file (first line; a file only its owner may read) or the environment. */
async function adminPassword(ctx: RunContext): Promise<{ password: string; from: string } | undefined> {
  const file = ctx.options['password-file'] as string | undefined;
  if (file) {
    const p = path.resolve(ctx.io.cwd, file);
    const fail = (e: NodeJS.ErrnoException) => {
      throw new UserError(`--password-file ${file}: ${e.code ?? e.message}`);
    };
    const st = await fs.stat(p).catch(fail);
    if (st.mode & 0o077)
      throw new UserError(`--password-file ${file} may be read or written by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); it holds the broker admin password: chmod 600 ${file}`);
    const text = await fs.readFile(p, 'utf8').catch(fail);
    const pw = text.split('\n')[0].trim();
    if (!pw) throw new UserError(`--password-file ${file} is empty: put the broker admin password on its first line`);
    return { password: pw, from: `--password-file ${file}` };
  }
  const env = ctx.io.env[STATUS_PASSWORD_ENV];
  if (env) return { password: env, from: `$${STATUS_PASSWORD_ENV}` };
  return undefined;
}

async function requiredAdminPassword(ctx: RunContext): Promise<string> {
  const a = await adminPassword(ctx);
  if (!a) throw new UsageError(`the broker admin password is needed: --password-file FILE (first line) or ${STATUS_PASSWORD_ENV}`);
  return a.password;
}

const passwordOption = { type: 'string', value: 'FILE', description: `the broker admin password (first line); default $${STATUS_PASSWORD_ENV}` } as const;

export const status = command('status', 'the fleet as its devices report it (MQTT): per-site counts, then what needs a person', {
  usage: 'status [--site S] [--stale 1h] [--password-file FILE] [--seen FILE] [--clear-departed] [--json]',
  common: ['inventory', 'out', 'json'],
  description: `Reads every device's retained status from the broker named in the inventory's status: block (TLS, the
broker's CA from status.caFile pinned, user status.adminUser), joins it with the inventory and OUT/manifest.json,
and counts per site: up to date, behind (bundle not the last build's, another K3s version, Flux not Ready), first
boot in progress, failed, locked (data volume), silent (nothing received for --stale), never seen. How old a status
is comes from the broker (the message expiry left), not from the report's own time, which is only checked against
it (a device clock off by more than a period is flagged). A status without message expiry is not counted as
current. Then the devices that need a person, with the reason; a device the broker refuses looks silent here (the
broker's log says why). Devices that left the fleet are not counted; a status of theirs that reached the broker
after the revoke, or never expires, needs a person (--clear-departed removes them once read). Malformed or
oversized statuses are ignored and counted. Exit 0 nothing needs a person, 1 any device needs a person (for cron
and CI; a fleet none of whose devices reports is all never seen: 1) or the broker cannot be read, 2 bad usage or
inventory, or nothing to report on (no active device; --site naming none). See docs/status.md.`,
  options: {
    site: { type: 'string', value: 'S', description: 'only this site ("<region>/<site>" or the site name)' },
    stale: { type: 'string', value: 'DURATION', description: 'a report older than this is silent (default: 1.5 report periods)' },
    'password-file': passwordOption,
    seen: { type: 'string', value: 'FILE', description: 'remember when each device was last seen (JSON, updated): devices whose status expired show as silent, not never seen' },
    timeout: { type: 'string', value: 'DURATION', default: '15s', description: 'give up on a broker that does not answer' },
    broker: { type: 'string', value: 'URL', description: 'read from mqtts://HOST[:PORT] instead of status.broker (a tunnel; the certificate must name HOST)' },
    'clear-departed': { type: 'boolean', default: false, description: 'after reading, clear the statuses devices that left the fleet left on the broker (they are listed first)' },
  },
  examples: ['EDGEFORGE_STATUS_PASSWORD=… edgeforge status', 'edgeforge status --site kr-south/ulsan-plant-1 --stale 1h --password-file ~/.config/edgeforge/broker-admin --json'],
  async run(ctx) {
    const staleSec = ctx.options.stale ? parseDuration(ctx.options.stale as string, '--stale') : undefined;
    const timeoutSec = parseDuration((ctx.options.timeout as string) ?? '15s', '--timeout');
    // the same rule as status.broker: one parser, one default port
    const brokerOption = ctx.options.broker as string | undefined;
    const broker = brokerOption === undefined ? undefined : parseBrokerUrl(brokerOption);
    if (brokerOption !== undefined && !broker) throw new UsageError(`--broker must be ${BROKER_URL_RULE}, not "${brokerOption}"`);
    const fleet = await loadFleet(ctx);
    const { readFleetStatus, requireStatusConfig } = await import('../../fleet-status/read.ts');
    requireStatusConfig(fleet);
    const password = await requiredAdminPassword(ctx);
    const epoch = ctx.io.env.EDGEFORGE_NOW ? Number(ctx.io.env.EDGEFORGE_NOW) : undefined;
    const s = await readFleetStatus(fleet, {
      inventoryFile: path.resolve(ctx.io.cwd, ctx.common.inventory),
      outDir: path.resolve(ctx.io.cwd, ctx.common.out),
      password,
      site: ctx.options.site as string | undefined,
      staleSec,
      now: epoch ? new Date(epoch * 1000) : new Date(),
      seenFile: ctx.options.seen ? path.resolve(ctx.io.cwd, ctx.options.seen as string) : undefined,
      timeoutMs: timeoutSec * 1000,
      brokerUrl: broker?.url,
      clearDeparted: Boolean(ctx.options['clear-departed']),
    });
    if (ctx.common.json) ctx.io.out(JSON.stringify(s, null, 2));
    else {
      const { statusText } = await import('../../fleet-status/format.ts');
      ctx.io.out(statusText(s));
    }
    // the exit status is what was read (a cleared status may have meant the broker still accepts a revoked device)
    const code = statusExitCode(s);
    if (code === 2) ctx.io.err('status: the inventory has no active device: nothing to report');
    return code;
  },
});

export const statusBrokerConfig = command('status broker-config', "the broker side of fleet status: Mosquitto listener (TLS), users and ACL, for the operator's broker", {
  usage: 'status broker-config --to DIR [--password-file FILE | --admin-hash-file FILE] [--port N] [--bind ADDR] [--tls-cafile F --tls-certfile F --tls-keyfile F]',
  common: ['inventory', 'keys', 'json'],
  description: `Writes DIR/mosquitto.conf, DIR/passwd (mosquitto_passwd format, PBKDF2-SHA512) and DIR/acl for Mosquitto 2.0
(Debian 12's 2.0.11): one user per active device, allowed to write only its own status topic, its client id
tied to its user name; the admin user (status.adminUser) reads the fleet. Revoked, lost, stolen, retired and
replaced devices get no user, so the broker refuses them. Device passwords stay in KEYS (encrypted to the
admins); only their hashes are written. The admin's hash comes from its password (--password-file or
$${STATUS_PASSWORD_ENV}: at least 20 characters; hashed with many PBKDF2 rounds), from --admin-hash-file, or — on
every later run — from DIR/passwd as it is. A file it replaces keeps its owner, group and mode; a new one takes
DIR's owner and group (chown -R mosquitto: DIR once, docs/status.md). Run it after keys change or a revoke, then
reload the broker (systemctl reload mosquitto).`,
  options: {
    to: { type: 'string', value: 'DIR', description: 'where to write mosquitto.conf, passwd and acl' },
    'password-file': { type: 'string', value: 'FILE', description: `the broker admin password (first line; mode 0600); default $${STATUS_PASSWORD_ENV}, else the admin hash already in DIR/passwd` },
    'admin-hash-file': { type: 'string', value: 'FILE', description: 'the admin\'s "$7$…" hash instead of its password (a bare line, or the admin\'s line of a passwd file)' },
    port: { type: 'string', value: 'N', description: 'listener port (default: the port of status.broker)' },
    bind: { type: 'string', value: 'ADDR', description: 'listener address (default: all)' },
    'tls-cafile': { type: 'string', value: 'FILE', description: 'on the broker host (default /etc/mosquitto/certs/ca.pem)' },
    'tls-certfile': { type: 'string', value: 'FILE', description: 'on the broker host (default /etc/mosquitto/certs/broker.pem)' },
    'tls-keyfile': { type: 'string', value: 'FILE', description: 'on the broker host (default /etc/mosquitto/certs/broker.key)' },
    'data-dir': { type: 'string', value: 'DIR', description: 'directory the config names on the broker host (default: --to as given)' },
  },
  examples: [
    'edgeforge status broker-config --to /etc/mosquitto/edgeforge --password-file ~/.config/edgeforge/broker-admin',
    'edgeforge revoke ulsan1-line1-002 --reason stolen && edgeforge status broker-config --to /etc/mosquitto/edgeforge && systemctl reload mosquitto',
  ],
  async run(ctx) {
    const to = ctx.options.to as string | undefined;
    if (!to) throw new UsageError('--to DIR is required');
    const port = ctx.options.port ? Number(ctx.options.port) : undefined;
    if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UsageError(`--port must be a TCP port, not "${ctx.options.port}"`);
    const hashFile = ctx.options['admin-hash-file'] as string | undefined;
    if (hashFile && ctx.options['password-file']) throw new UsageError('--password-file and --admin-hash-file: give one of them');
    const fleet = await loadFleet(ctx);
    const { requireStatusConfig } = await import('../../fleet-status/read.ts');
    const cfg = requireStatusConfig(fleet);
    const admin = hashFile ? { hashFile: path.resolve(ctx.io.cwd, hashFile) } : await adminPassword(ctx);
    const { writeBrokerConfig } = await import('../../fleet-status/write-broker.ts');
    const dir = path.resolve(ctx.io.cwd, to);
    const { KeysError } = await import('../../util/errors.ts');
    const r = await writeBrokerConfig(fleet, cfg, {
      keysDir: path.resolve(ctx.io.cwd, ctx.common.keys),
      to: dir,
      admin,
      port,
      bind: ctx.options.bind as string | undefined,
      dataDir: (ctx.options['data-dir'] as string | undefined) ?? dir,
      tls: { cafile: ctx.options['tls-cafile'] as string | undefined, certfile: ctx.options['tls-certfile'] as string | undefined, keyfile: ctx.options['tls-keyfile'] as string | undefined },
    }).catch((err) => {
      if (err instanceof KeysError) throw new UserError(err.message, 2);
      throw err;
    });
    if (ctx.common.json) ctx.io.out(JSON.stringify({ dir, files: r.files, users: r.users, missing: r.missing, admin: r.admin, warnings: r.warnings }, null, 2));
    else {
      ctx.io.out(
        `wrote ${r.files.map((f) => path.join(to, f)).join(', ')}: ${r.users} user(s) (${cfg.adminUser} + ${r.users - 1} device(s)); admin hash ${r.admin === 'kept' ? `kept from ${path.join(to, 'passwd')}` : `from the ${r.admin}`}`,
      );
      if (r.missing.length)
        ctx.io.err(
          `warning: ${r.missing.length} active device(s) have no broker credential yet (${r.missing.slice(0, 5).join(', ')}${r.missing.length > 5 ? ', …' : ''}): run \`edgeforge keys init\` or a build, then this command again`,
        );
      for (const w of r.warnings) ctx.io.err(`warning: ${w}`);
      ctx.io.out('reload the broker to apply: systemctl reload mosquitto (or send it SIGHUP)');
    }
    return 0;
  },
});
