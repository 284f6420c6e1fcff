// os bundle / os publish — the fleet's OS releases for A/B cards (docs/os-updates.md).
import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { sourceDateEpoch } from '../../pipeline/inputs/epoch.ts';
import { withKeyStore } from '../keystore.ts';
import { ensureOsKey, unlockOsKey } from '../../keys/os-key.ts';
import { makeOsBundle } from '../../pipeline/os/bundle.ts';
import { publishOs } from '../../pipeline/os/publish.ts';
import { OS_LAYOUTS, OS_VERSION_PATTERN, type OsLayout } from '../../inventory/schema.ts';
import { UsageError } from '../../util/errors.ts';
import { toYaml } from '../../render/yaml.ts';

export const osBundle = command('os bundle', "a signed RAUC bundle of a base image's OS, for A/B cards to install", {
  usage: 'os bundle --base-image FILE --version V [--layout uefi-gpt|raspi-mbr] [--to DIR]',
  common: ['inventory', 'keys', 'json'],
  description: `Makes a RAUC bundle (verity format) of the base image's root filesystem (and, for raspi-mbr, its boot
partition), signed with the fleet's OS-update key (made on first use in KEYS/os-update/: an X.509 certificate,
its private key encrypted to the admins). Prints the os.releases lines to add to the inventory: the bundle's
sha256 and the base image's, so a card built from that image knows it starts on this release. Needs rauc,
mksquashfs (squashfs-tools), e2fsck/resize2fs (e2fsprogs) and openssl.`,
  options: {
    'base-image': { type: 'string', value: 'FILE', description: 'the base image (.img or .img.xz) holding the new OS' },
    version: { type: 'string', value: 'V', description: 'the release name the inventory uses for it (os.version / os.canaryVersion), like 2026.12.1' },
    layout: { type: 'string', value: 'LAYOUT', description: "uefi-gpt or raspi-mbr (default: from the image's partition table)" },
    to: { type: 'string', value: 'DIR', default: 'images/os', description: 'where the bundle goes' },
  },
  examples: ['edgeforge os bundle -i inventory/acme.yaml --base-image debian-12-arm64-2027.01.img --version 2027.01.0'],
  async run(ctx) {
    const { io, common } = ctx;
    const baseImage = ctx.options['base-image'] as string | undefined;
    const version = ctx.options.version as string | undefined;
    if (!baseImage || !version) throw new UsageError('os bundle needs --base-image FILE and --version V');
    if (!new RegExp(OS_VERSION_PATTERN).test(version)) throw new UsageError(`--version ${JSON.stringify(version)}: letters, digits, ".", "+", "_", "~", "-", starting with a letter or digit`);
    const layout = ctx.options.layout as string | undefined;
    if (layout !== undefined && !(OS_LAYOUTS as readonly string[]).includes(layout)) throw new UsageError(`--layout must be one of ${OS_LAYOUTS.join(', ')}`);
    const fleet = await loadFleet(ctx);
    const toDir = path.resolve(io.cwd, ctx.options.to as string);
    const r = await withKeyStore(ctx, {}, async (ks) => {
      const key = await ensureOsKey(ks, fleet.name);
      if (key.created) io.err(`os bundle: made the fleet's OS-update key: ${ks.layout.osCert} (sha256 fingerprint ${key.fingerprint}); its private key is encrypted to the admins`);
      const { keyPem, certPem } = await unlockOsKey(ks);
      if (!common.json) io.err(`os bundle: ${version} from ${baseImage} (rauc bundle, verity; a few minutes for a GB-sized root)`);
      return makeOsBundle({ fleet: fleet.name, version, baseImage: path.resolve(io.cwd, baseImage), layout: layout as OsLayout | undefined, toDir, certPem, keyPem });
    });
    const rel = path.relative(path.dirname(path.resolve(io.cwd, common.inventory)), r.file);
    const entry = { file: rel, sha256: r.sha256, baseImageSha256: r.baseImageSha256 };
    if (common.json) {
      io.out(JSON.stringify({ ...r, inventory: { version: r.version, layout: r.layout, ...entry } }, null, 2));
      return 0;
    }
    io.err(`os bundle: ${r.file} (${Math.round(r.bytes / 1048576)} MiB; root filesystem ${Math.round(r.rootfsBytes / 1048576)} MiB)`);
    io.out(`# add to ${common.inventory}, under os.releases:\n${toYaml({ [r.version]: { [r.layout]: entry } })}`);
    return 0;
  },
});

export const osPublish = command('os publish', "what devices fetch: every ring's bundle and its signed ring pointer, in one directory", {
  usage: 'os publish --to DIR',
  common: ['inventory', 'keys', 'json'],
  description: `Writes DIR/bundles/ (every ring's release for the layouts its devices use, checked against the
inventory's sha256) and per ring DIR/canary.ring and DIR/stable.ring with their signatures (.ring.cms, the
OS-update key). Copy DIR to os.source.url (or each site's os.source.sites cache); devices read their ring's
pointer inside their maintenance window. "issued" is SOURCE_DATE_EPOCH (else the inventory's commit time): a
device refuses a pointer older than one it accepted. Bundles first, pointers last.`,
  options: { to: { type: 'string', value: 'DIR', description: "the directory to publish (a site cache's document root)" } },
  examples: ['edgeforge os publish -i inventory/acme.yaml --to /srv/edgeforge-os'],
  async run(ctx) {
    const { io, common } = ctx;
    const to = ctx.options.to as string | undefined;
    if (!to) throw new UsageError('os publish needs --to DIR');
    const fleet = await loadFleet(ctx);
    const inventoryPath = path.resolve(io.cwd, common.inventory);
    const { epoch, from } = await sourceDateEpoch(io.env, inventoryPath);
    const r = await withKeyStore(ctx, {}, async (ks) => {
      const { keyPem, certPem } = await unlockOsKey(ks);
      return publishOs({ fleet, inventoryPath, toDir: path.resolve(io.cwd, to), issued: epoch, certPem, keyPem });
    });
    if (common.json) {
      io.out(JSON.stringify({ ...r, issued: epoch }, null, 2));
      return 0;
    }
    for (const b of r.bundles) io.err(`os publish: ${b.file} (${b.how})`);
    for (const ring of r.rings) io.out(`${ring.ring.padEnd(6)} ${ring.version}  ${ring.bundles.map((b) => b.layout).join(', ')}`);
    io.err(`os publish: ${to}: pointers issued ${epoch} (${from})`);
    return 0;
  },
});
