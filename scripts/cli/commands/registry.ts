// The OCI transport's commands: publish the fleet repository, configure the registries, run the token issuer.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { command, type RunContext } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import type { Fleet } from '../../inventory/fleet.ts';

export const REGISTRY_PASSWORD_ENV = 'EDGEFORGE_REGISTRY_PASSWORD';

function requireOci(fleet: Fleet): NonNullable<Fleet['gitops']['oci']> {
  if (fleet.gitops.transport !== 'oci' || !fleet.gitops.oci)
    throw new UserError(`${fleet.file}: this fleet pulls from Git (gitops.transport is not oci): there is nothing to publish to a registry (docs/gitops.md, "OCI transport")`);
  return fleet.gitops.oci;
}

async function readCa(fleet: Fleet, ctx: RunContext): Promise<string> {
  const oci = requireOci(fleet);
  const file = path.resolve(path.dirname(path.resolve(ctx.io.cwd, ctx.common.inventory)), oci.caFile);
  return fs.readFile(file, 'utf8').catch(() => {
    throw new UserError(`gitops.oci.caFile ${oci.caFile} (${file}): cannot read it`);
  });
}

/** The signed manifest of OUT (signature checked against the build key pinned in keys/), as bytes. */
async function trustedManifest(ctx: RunContext): Promise<Buffer> {
  const outDir = path.resolve(ctx.io.cwd, ctx.common.out);
  const keysDir = path.resolve(ctx.io.cwd, ctx.common.keys);
  const { readPinnedFingerprint } = await import('../../keys/build-key.ts');
  const { checkManifestSignature } = await import('../../keys/verify.ts');
  const pinned = await readPinnedFingerprint(keysDir).catch(() => {
    throw new UserError(`${keysDir}: no pinned build key (keys/build/signing-key.fingerprint): the manifest's signature cannot be checked`);
  });
  const c = await checkManifestSignature(outDir, pinned, keysDir);
  if (!c.signature.ok || !c.manifestBytes)
    throw new UserError(
      `${path.join(ctx.common.out, 'manifest.json')}: ${c.problems.map((p) => `${p.path}: ${p.message}`).join('; ') || 'not signed by the pinned build key'} (run edgeforge build first)`,
    );
  return c.manifestBytes;
}

export const publishCommand = command('publish', 'push the fleet repository at its committed revision as one OCI artifact per site (OCI transport)', {
  usage: 'publish --gitops DIR [--password-file FILE] [-o OUT] [-i INVENTORY] [--keys DIR]',
  description: `For gitops.transport: oci. Reads the fleet repository DIR at HEAD (refused with uncommitted changes), builds
each site's artifact (what its devices' Kustomizations read: the shared tree, its region and site; never the
SOPS public keys) in the format of \`flux push artifact\` (OCI manifest, Flux config and content media types,
source/revision/created annotations), and pushes to gitops.oci.registry only sites whose content changed,
tagged with the commit and \`latest\`. Authenticates as the publisher (its password from --password-file or
$${REGISTRY_PASSWORD_ENV}, written by \`edgeforge registry config\`). Records every digest in OUT/manifest.json
and signs it again with the build key: run it after \`edgeforge build\`, in CI after each merge (docs/gitops.md).`,
  options: {
    gitops: { type: 'string', value: 'DIR', description: 'the fleet repository working tree (edgeforge gitops --to DIR, committed)' },
    'password-file': { type: 'string', value: 'FILE', description: `the publisher password (first line); default $${REGISTRY_PASSWORD_ENV}` },
  },
  examples: ['EDGEFORGE_REGISTRY_PASSWORD=… edgeforge publish --gitops ../fleet-repo -o images/out', 'edgeforge publish --gitops ../fleet-repo --password-file /run/secrets/registry-publisher --json'],
  async run(ctx) {
    const dir = ctx.options.gitops as string | undefined;
    if (!dir) throw new UsageError('--gitops DIR is required: the committed fleet repository to publish');
    const fleet = await loadFleet(ctx);
    const oci = requireOci(fleet);
    const pwFile = ctx.options['password-file'] as string | undefined;
    const password = pwFile ? (await fs.readFile(path.resolve(ctx.io.cwd, pwFile), 'utf8')).split('\n')[0].trim() : ctx.io.env[REGISTRY_PASSWORD_ENV];
    if (!password) throw new UsageError(`the publisher password: --password-file FILE or $${REGISTRY_PASSWORD_ENV} (DIR/central/publisher.password of edgeforge registry config)`);
    const manifestBytes = await trustedManifest(ctx);
    const { publish, readTreeAtHead, recordPublish } = await import('../../pipeline/publish.ts');
    const { PUBLISHER_USER } = await import('../../render/oci/registry-config.ts');
    const tree = await readTreeAtHead(path.resolve(ctx.io.cwd, dir), fleet.gitops.branch);
    const t0 = performance.now();
    const r = await publish({
      fleet,
      tree,
      endpoint: { host: oci.registry, ca: await readCa(fleet, ctx), username: PUBLISHER_USER, password },
      onSite: (s, what) => !ctx.common.json && ctx.io.err(`  ${s}: ${what}`),
    });
    const { openKeyStore } = await import('../../keys/store.ts');
    const ks = await openKeyStore({ dir: path.resolve(ctx.io.cwd, ctx.common.keys) });
    try {
      await recordPublish(path.resolve(ctx.io.cwd, ctx.common.out), manifestBytes, r.record, async (bytes, epoch) => ({
        signature: await ks.signDetached(bytes, { sourceDateEpoch: epoch }),
        publicKey: await ks.buildPublicKeyArmored(),
      }));
    } finally {
      await ks.close();
    }
    const seconds = Math.round(performance.now() - t0) / 1000;
    if (ctx.common.json)
      ctx.io.out(JSON.stringify({ revision: tree.revision, registry: oci.registry, pushed: r.pushed, unchanged: r.unchanged.length, sentBytes: r.sentBytes, requests: r.requests, seconds }, null, 2));
    else
      ctx.io.out(
        `published ${tree.revision} to ${oci.registry}: ${r.pushed.length} site artifact(s) pushed, ${r.unchanged.length} unchanged; ${r.sentBytes} bytes sent in ${r.requests} request(s), ${seconds} s; recorded in ${path.join(ctx.common.out, 'manifest.json')} (signed)`,
      );
    return 0;
  },
});

export const registryConfig = command('registry config', "the OCI transport's registries: the central registry and each site cache, with their token issuers", {
  usage: 'registry config --to DIR [-o OUT] [--listen ADDR] [--token-port N] [--storage DIR] [--tls-cert FILE --tls-key FILE]',
  description: `Writes DIR/central/ (config.yml for Debian's docker-registry, CNCF distribution 2.8, with \`auth: token\`; the
token issuer's access file, signing key and certificate; the publisher's password) and DIR/sites/<region>/<site>/
for each gitops.oci.siteCaches entry (the same registry in pull-through mode, \`proxy:\` to the central one,
with its upstream password and its own issuer). Each device may pull only its site's repository, with the
credential in its seed; the access files take the devices' verifiers from OUT/manifest.json (signature
checked), for the active devices of the inventory only: after a revoke, run it again and the issuers refuse
the device at once (no restart). Keys and passwords are made once and kept. Paths inside the configs are
DIR's: write it where the registry host reads it (docs/gitops.md, "Registries").`,
  options: {
    to: { type: 'string', value: 'DIR', description: 'where to write central/ and sites/' },
    listen: { type: 'string', value: 'ADDR', description: 'registry listen address on its host (default :5000)' },
    'token-port': { type: 'string', value: 'N', description: 'port of the token issuer on the same host (default 5001)' },
    storage: { type: 'string', value: 'DIR', description: 'registry storage on its host (default /var/lib/docker-registry)' },
    'tls-cert': { type: 'string', value: 'FILE', description: "the registry certificate on its host, signed by gitops.oci.caFile's CA (default /etc/docker/registry/tls.crt)" },
    'tls-key': { type: 'string', value: 'FILE', description: 'its key (default /etc/docker/registry/tls.key)' },
  },
  examples: ['edgeforge registry config --to /etc/edgeforge-registry -o images/out', 'edgeforge revoke ulsan1-line1-002 --reason stolen && edgeforge registry config --to /etc/edgeforge-registry'],
  async run(ctx) {
    const to = ctx.options.to as string | undefined;
    if (!to) throw new UsageError('--to DIR is required');
    const tokenPort = Number(ctx.options['token-port'] ?? 5001);
    if (!(Number.isInteger(tokenPort) && tokenPort > 0 && tokenPort < 65536)) throw new UsageError(`--token-port must be a TCP port, not "${ctx.options['token-port']}"`);
    const fleet = await loadFleet(ctx);
    const oci = requireOci(fleet);
    const { parseManifest } = await import('../../manifest/read.ts');
    const m = parseManifest(await trustedManifest(ctx), path.join(ctx.common.out, 'manifest.json'));
    const active = new Set(fleet.active.map((d) => d.id));
    const pulls = m.devices.filter((d) => active.has(d.id) && d.registry).map((d) => d.registry!);
    const missing = fleet.active.filter((d) => d.cluster.kind !== 'multi-node-agent' && !m.devices.find((x) => x.id === d.id)?.registry).map((d) => d.id);
    const hostOf = (h: string) => h.replace(/:\d+$/, '');
    const settings = (host: string) => ({
      addr: (ctx.options.listen as string | undefined) ?? ':5000',
      storageDir: (ctx.options.storage as string | undefined) ?? '/var/lib/docker-registry',
      tlsCert: (ctx.options['tls-cert'] as string | undefined) ?? '/etc/docker/registry/tls.crt',
      tlsKey: (ctx.options['tls-key'] as string | undefined) ?? '/etc/docker/registry/tls.key',
      realm: `https://${hostOf(host)}:${tokenPort}/token`,
    });
    const { writeRegistryConfig } = await import('../../registry/write-config.ts');
    const r = await writeRegistryConfig({ to: path.resolve(ctx.io.cwd, to), fleet, pulls, central: settings(oci.registry), site: (_id, host) => settings(host) });
    if (ctx.common.json) ctx.io.out(JSON.stringify({ ...r, missing }, null, 2));
    else {
      ctx.io.out(
        `wrote ${path.join(to, 'central')} (${r.central.users} user(s))${r.sites.length ? ` and ${r.sites.length} site cache(s): ${r.sites.map((s) => `${s.id} (${s.users})`).join(', ')}` : ''}`,
      );
      if (r.created.length) ctx.io.out(`made ${r.created.length} new key/password file(s) (kept from now on): ${r.created.map((f) => path.relative(path.resolve(ctx.io.cwd, to), f)).join(', ')}`);
      if (missing.length)
        ctx.io.err(
          `warning: ${missing.length} active device(s) have no pull credential in ${ctx.common.out}/manifest.json yet (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}): build them, then run this again`,
        );
      ctx.io.out('start (or restart) the registries with these configs; the token issuers re-read their access files by themselves');
    }
    return 0;
  },
});

export const registryTokenServer = command('registry token-server', 'run the token issuer of a registry written by registry config (until stopped)', {
  usage: 'registry token-server --dir DIR/central|DIR/sites/<region>/<site> [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE] [--ttl SECONDS]',
  common: ['json'],
  description: `Serves GET /token for the registry whose issuer/ directory DIR holds: HTTP Basic with a user of its access
file, a token (ES256, 5 minutes by default) granting what the file allows on the repository asked for. A user
that is not in the file (a revoked device) gets 401; the file is re-read when \`registry config\` rewrites it.
One line per request on stderr (status, user, scope; never a password or token). Run it as a service beside
the registry (docs/gitops.md, "Registries").`,
  options: {
    dir: { type: 'string', value: 'DIR', description: 'DIR/central or DIR/sites/<region>/<site> of registry config' },
    listen: { type: 'string', value: 'HOST:PORT', description: 'default 0.0.0.0:5001' },
    'tls-cert': { type: 'string', value: 'FILE', description: "serve HTTPS with this certificate (the registry's: devices check it against the pinned CA)" },
    'tls-key': { type: 'string', value: 'FILE', description: 'its key' },
    ttl: { type: 'string', value: 'SECONDS', description: "token lifetime (default 300): how long a revoked device's last token lasts" },
  },
  examples: ['edgeforge registry token-server --dir /etc/edgeforge-registry/central --tls-cert /etc/docker/registry/tls.crt --tls-key /etc/docker/registry/tls.key'],
  async run(ctx) {
    const dir = ctx.options.dir as string | undefined;
    if (!dir) throw new UsageError('--dir is required');
    const [host, port] = ((ctx.options.listen as string | undefined) ?? '0.0.0.0:5001').split(/:(?=\d+$)/);
    const ttl = Number(ctx.options.ttl ?? 300);
    if (!Number.isInteger(ttl) || ttl < 10) throw new UsageError('--ttl must be whole seconds, at least 10');
    const certFile = ctx.options['tls-cert'] as string | undefined;
    const keyFile = ctx.options['tls-key'] as string | undefined;
    if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
    const d = path.resolve(ctx.io.cwd, dir, 'issuer');
    const { startTokenIssuer } = await import('../../registry/token-issuer.ts');
    const issuer = await startTokenIssuer({
      accessFile: path.join(d, 'access.json'),
      keyPem: await fs.readFile(path.join(d, 'token.key'), 'utf8'),
      ttl,
      host,
      port: Number(port),
      tls: certFile ? { cert: await fs.readFile(path.resolve(ctx.io.cwd, certFile), 'utf8'), key: await fs.readFile(path.resolve(ctx.io.cwd, keyFile!), 'utf8') } : undefined,
      log: (line) => ctx.io.err(line),
    });
    ctx.io.err(`token issuer for ${dir} on ${issuer.url}`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await issuer.close();
    return 0;
  },
});
