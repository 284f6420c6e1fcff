import path from 'node:path';
import { command } from '../command.ts';
import { loadFleet } from '../../pipeline/inputs/fleet.ts';
import { fluxAirgapHelmProblem, fluxControllerImages, fluxInstallProblem, fluxImageArchiveProblems, gitopsSourceProblems } from '../../render/flux/index.ts';
import { imageArchiveProblems, imageArchiveWarnings } from '../../pipeline/inputs/image-archives.ts';
import { loadFluxBundle } from '../../pipeline/inputs/flux-bundle.ts';
import { mirrorGaps } from '../../render/plan/egress.ts';
import { deliveredImageArchives } from '../../render/k3s/images.ts';
import { k3sInstallPinProblem, PLACEHOLDER_SHA256 } from '../../render/k3s/install.ts';
import { InventoryError } from '../../util/errors.ts';
import { kubectlSkewProblems, upgradeImageArchiveProblems } from '../../render/day2/upgrade-images.ts';
import { timeWarnings } from '../../pipeline/inputs/expiries.ts';
import { clock } from '../clock.ts';

export const validate = command('validate', 'check the inventory; print every problem as FILE:LINE:COL: message', {
  description:
    'Reports every problem at once (schema, unknown keys with suggestions, duplicates, networks, clusters). Writes nothing. Exit 2 when invalid. What runs out with time (a K3s line past its end of life, an expiring broker or registry CA) is a warning, an error with --strict.',
  options: { strict: { type: 'boolean', description: 'what runs out with time (end-of-life K3s line, expiring certificate) is an error' } },
  examples: ['edgeforge validate -i inventory/example.yaml', 'edgeforge validate --strict --json'],
  async run(ctx) {
    const fleet = await loadFleet(ctx);
    // GitOps source checks that need the whole fleet (mirrors name real sites, known_hosts name the right host)
    const sourceProblems = gitopsSourceProblems(fleet);
    if (sourceProblems.length)
      throw new InventoryError(
        ctx.common.inventory,
        sourceProblems.map((message) => ({ line: 1, col: 1, message: `gitops: ${message}` })),
      );
    // the pinned image archives: present, and (placeholders aside, which only warn) hashing to their pins;
    // with an airgap install, one for every Flux controller image (when the Flux bundle can be read here)
    // (only those an airgap install delivers, as the build checks them; pinned ones an online install ignores get a warning)
    const delivered = { ...fleet, imageArchives: deliveredImageArchives(fleet) };
    const archiveProblems = (await imageArchiveProblems(delivered, path.resolve(ctx.io.cwd, ctx.common.inventory), { hash: true })).filter(
      (p) => !fleet.imageArchives.some((a) => a.sha256 === PLACEHOLDER_SHA256 && a.at.sha256.line === p.line && a.at.sha256.col === p.col),
    );
    const bundle = await loadFluxBundle(fleet, ctx.common.inventory, ctx.io.cwd).catch(() => ({ bundle: undefined }));
    if (bundle.bundle) {
      try {
        for (const message of fluxImageArchiveProblems(fleet, bundle.bundle)) archiveProblems.push({ ...fleet.imageArchiveLists.flux, message });
      } catch {
        /* a bundle that does not match its pin: build reports it with the reason */
      }
    }
    if (archiveProblems.length) throw new InventoryError(ctx.common.inventory, archiveProblems);
    // the registries of Flux's images, from the bundle read above (undefined when it is missing or not the pinned one)
    let fluxImages: string[] | undefined;
    try {
      fluxImages = bundle.bundle ? [...fluxControllerImages(fleet, bundle.bundle).keys()] : undefined;
    } catch {
      fluxImages = undefined;
    }
    const timed = await timeWarnings(fleet, path.resolve(ctx.io.cwd, ctx.common.inventory), clock(ctx.io));
    const warnings = [
      k3sInstallPinProblem(fleet),
      fluxInstallProblem(fleet),
      fluxAirgapHelmProblem(fleet),
      ...imageArchiveWarnings(fleet),
      ...mirrorGaps(fleet, { fluxImages }),
      ...upgradeImageArchiveProblems(fleet),
      ...kubectlSkewProblems(fleet),
      ...timed,
    ].filter((w): w is string => Boolean(w));
    const strict = Boolean(ctx.options.strict) && timed.length > 0;
    for (const w of warnings) ctx.io.err(`${ctx.common.inventory}: ${strict && timed.includes(w) ? 'error' : 'warning'}: ${w}`);
    const revoked = fleet.devices.length - fleet.active.length;
    const summary = {
      valid: !strict,
      file: ctx.common.inventory,
      fleet: fleet.name,
      regions: fleet.regions.length,
      sites: fleet.sites.length,
      activeDevices: fleet.active.length,
      revokedDevices: revoked,
      inventorySha256: fleet.inventorySha256,
      warnings,
    };
    if (ctx.common.json) ctx.io.out(JSON.stringify(summary, null, 2));
    else if (strict) ctx.io.out(`${ctx.common.inventory}: refused with --strict: ${timed.length} pin(s) out of time (above)`);
    else
      ctx.io.out(
        `${ctx.common.inventory}: valid — fleet ${fleet.name}: ${fleet.active.length} active device(s)${revoked ? ` (+${revoked} revoked or replaced)` : ''} in ${fleet.sites.length} site(s), ${fleet.regions.length} region(s)`,
      );
    return strict ? 2 : 0;
  },
});
