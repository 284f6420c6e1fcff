// The per-device `flux-bootstrap` artifact: three files the first-boot program places in K3s's
// auto-deploy directory, and the shell that places them and later hands them over to Git.
//
// The trap: K3s re-applies every file in /var/lib/rancher/k3s/server/manifests at each start. Once Flux has
// upgraded itself from Git, a reboot would roll it back to the bootstrap copy. Our answer: Flux owns its own
// components from Git (the device's flux-system/ directory holds the same objects), and once it has
// reconciled them, a hand-over job writes `<file>.skip` next to each bootstrap file (K3s ignores a manifest
// with a .skip sibling). Removing a file from that directory never deletes what K3s created, so the
// one-time secrets file is deleted as soon as its Secrets exist. docs/gitops.md, "Bootstrap and hand-over".
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { textFile, type RenderedFile } from '../files.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bundleName, FLUX_HANDOVER, FLUX_STATE_DIR, K3S_MANIFESTS_DIR } from '../../device/layout.ts';
import { fillShellTemplate } from '../../util/shell.ts';
import { systemdUnit } from '../systemd/unit.ts';
import { fluxComponentsYaml, fluxStorageMode, SOURCE_HOSTPATH, type FluxBundleInput } from './components.ts';
import { fluxSecretObjects, type FluxDeviceSecrets } from './secrets.ts';
import { sizingClassFor } from './sizing.ts';
import { devicePath, fluxSyncObjects, runsFlux } from './sync.ts';
import { devicePollInterval } from './jitter.ts';
import { toYamlStream } from '../yaml.ts';
import { usesOci } from '../oci/format.ts';

/** Directory of the device output (and of the first-boot bundle) holding the bootstrap files. */
export const FLUX_BOOTSTRAP_DIR = 'flux';
/** The bootstrap files, in the order they must be placed. The AddOn name is the part before ".yaml". */
export const FLUX_BOOTSTRAP_FILES = ['edgeforge-flux-components.yaml', 'edgeforge-flux-secrets.yaml', 'edgeforge-flux-sync.yaml'] as const;
/** Holds private keys: mode 0600, deleted from the device once applied. */
export const FLUX_SECRET_FILE = 'edgeforge-flux-secrets.yaml';

export { type FluxDeviceSecrets } from './secrets.ts';

const assets = new Map<string, string>();
/** a checked-in shell source of sh/, read once (rendering stays pure) */
function asset(name: string): string {
  let s = assets.get(name);
  if (s === undefined) assets.set(name, (s = readFileSync(new URL(`./sh/${name}`, import.meta.url), 'utf8')));
  return s;
}

function header(d: ResolvedDevice, what: string): string {
  return [
    `edgeforge flux-bootstrap for ${d.id} (${d.siteId}): ${what}`,
    `Placed once in ${K3S_MANIFESTS_DIR}; after Flux reconciles ${devicePath(d)}/flux-system from Git,`,
    'a .skip file beside this one stops K3s from re-applying it. See docs/gitops.md.',
  ].join('\n');
}

/**
 * The device's flux-bootstrap files (RenderedFile paths "flux/<name>"). Empty for devices that do not run
 * Flux (agents of a multi-node site, and devices that are not active). Throws FluxConfigError when the
 * fleet pins no Flux install or the bundle does not match its sha256.
 */
export function renderFluxBootstrap(d: ResolvedDevice, fleet: Fleet, secrets: FluxDeviceSecrets, input: FluxBundleInput = {}): RenderedFile[] {
  if (!runsFlux(d)) return [];
  const cls = sizingClassFor(d.profile.ramMiB);
  const poll = devicePollInterval(d.id, fleet.gitops.interval);
  const [components, secretsFile, sync] = FLUX_BOOTSTRAP_FILES;
  return [
    textFile(
      `${FLUX_BOOTSTRAP_DIR}/${components}`,
      'flux-bootstrap',
      fluxComponentsYaml(fleet, cls, input, header(d, `Flux ${fleet.gitops.flux.version} controllers (${cls} sizing, ${d.profile.ramMiB} MiB board)`)),
    ),
    textFile(
      `${FLUX_BOOTSTRAP_DIR}/${secretsFile}`,
      'flux-bootstrap',
      toYamlStream(
        fluxSecretObjects(d, fleet, secrets, input.registryCa),
        header(d, usesOci(fleet) ? 'registry pull credential, pinned registry CA, SOPS keys (one-time secrets)' : 'Git deploy key, pinned known_hosts, SOPS keys (one-time secrets)'),
      ),
      true,
    ),
    textFile(
      `${FLUX_BOOTSTRAP_DIR}/${sync}`,
      'flux-bootstrap',
      toYamlStream(fluxSyncObjects(d, fleet), header(d, `${usesOci(fleet) ? 'OCIRepository' : 'GitRepository'} (every ${poll.text}) and Kustomizations for ${devicePath(d)}`)),
    ),
  ];
}

/**
 * POSIX sh for the first-boot program (sh/flux-bootstrap.sh). Defines two functions:
 *   flux_place SRC_DIR   place the bootstrap files (in order) unless Flux already took over;
 *                        EDGEFORGE_FLUX_REBOOTSTRAP=1 forces a fresh bootstrap (e.g. a rotated deploy key)
 *   flux_install_handover  install the hand-over program (FLUX_HANDOVER.program) and a systemd timer that runs
 *                        it every 2 minutes until Flux owns itself (works across reboots and days offline)
 * Paths honour $R (an alternative root, as the first-boot program uses for tests).
 */
export function fluxFirstbootFragment(fleet: Pick<Fleet, 'k3s'>): string {
  // a text that fills a line of its own in a here-document: the template's line break ends its last line
  const ownLines = (text: string) => text.replace(/\n$/, '');
  return fillShellTemplate('scripts/render/flux/sh/flux-bootstrap.sh', asset('flux-bootstrap.sh'), {
    ...fluxPaths(),
    FLUX_HOSTPATH: fluxStorageMode(fleet) === 'hostPath' ? SOURCE_HOSTPATH : '',
    PROGRAM_DIR: path.posix.dirname(FLUX_HANDOVER.program),
    UNIT_DIR: path.posix.dirname(FLUX_HANDOVER.service),
    HANDOVER_PROGRAM: FLUX_HANDOVER.program,
    HANDOVER_SERVICE: FLUX_HANDOVER.service,
    HANDOVER_TIMER: FLUX_HANDOVER.timer,
    HANDOVER_PROGRAM_TEXT: ownLines(fluxHandoverScript()),
    HANDOVER_SERVICE_UNIT: ownLines(handoverService()),
    HANDOVER_TIMER_UNIT: ownLines(handoverTimer()),
  });
}

/** What both shell assets read: where K3s's manifests and the hand-over's state are, and the bootstrap files. */
function fluxPaths(): Record<string, string> {
  return {
    K3S_MANIFESTS_DIR,
    FLUX_STATE_DIR,
    HANDED_OVER: bundleName(FLUX_HANDOVER.handedOver),
    FLUX_FILES: FLUX_BOOTSTRAP_FILES.join(' '),
    FLUX_SECRET_FILE,
    HANDOVER_TIMER_NAME: bundleName(FLUX_HANDOVER.timer),
  };
}

function handoverService(): string {
  return systemdUnit([], {
    Unit: {
      Description: 'edgeforge: hand the Flux bootstrap over to Git once Flux reconciles itself',
      After: 'k3s.service',
      ConditionPathExists: `!${FLUX_HANDOVER.handedOver}`,
    },
    Service: { Type: 'oneshot', ExecStart: FLUX_HANDOVER.program },
  });
}

function handoverTimer(): string {
  return systemdUnit([], {
    Unit: { Description: 'edgeforge: retry the Flux hand-over every 2 minutes until it is done' },
    Timer: { OnBootSec: '2min', OnCalendar: '*:0/2', AccuracySec: '30s' },
    Install: { WantedBy: 'timers.target' },
  });
}

/**
 * The hand-over program (installed on the device; sh/flux-handover.sh). Idempotent; exits 0 while waiting so
 * the timer retries.
 *  1. both Secrets exist -> the secrets file gets a .skip and is deleted (one-time secrets off the disk);
 *  2. Kustomization flux-system is Ready (Flux applied its own components and sync objects from Git) ->
 *     .skip for every bootstrap file, record the hand-over, stop the timer.
 */
export function fluxHandoverScript(): string {
  const p = fluxPaths();
  return fillShellTemplate('scripts/render/flux/sh/flux-handover.sh', asset('flux-handover.sh'), {
    K3S_MANIFESTS_DIR: p.K3S_MANIFESTS_DIR,
    FLUX_STATE_DIR: p.FLUX_STATE_DIR,
    HANDED_OVER: p.HANDED_OVER,
    FLUX_FILES: p.FLUX_FILES,
    FLUX_SECRET_FILE: p.FLUX_SECRET_FILE,
    HANDOVER_TIMER_NAME: p.HANDOVER_TIMER_NAME,
  });
}
