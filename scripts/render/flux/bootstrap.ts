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
import { FLUX_STATE_DIR } from '../../device/layout.ts';
import { fluxComponentsYaml, fluxStorageMode, SOURCE_HOSTPATH, type FluxBundleInput } from './components.ts';
import { fluxSecretObjects, type FluxDeviceSecrets } from './secrets.ts';
import { sizingClassFor } from './sizing.ts';
import { devicePath, fluxSyncObjects, runsFlux } from './sync.ts';
import { devicePollInterval } from './jitter.ts';
import { toYamlStream } from '../yaml.ts';
import { usesOci } from '../oci/format.ts';

/** Directory of the device output (and of the first-boot bundle) holding the bootstrap files. */
export const FLUX_BOOTSTRAP_DIR = 'flux';
/** K3s's auto-deploy directory on the device. */
export const K3S_MANIFESTS_DIR = '/var/lib/rancher/k3s/server/manifests';
/** The bootstrap files, in the order they must be placed. The AddOn name is the part before ".yaml". */
export const FLUX_BOOTSTRAP_FILES = ['edgeforge-flux-components.yaml', 'edgeforge-flux-secrets.yaml', 'edgeforge-flux-sync.yaml'] as const;
/** Holds private keys: mode 0600, deleted from the device once applied. */
export const FLUX_SECRET_FILE = 'edgeforge-flux-secrets.yaml';

export { type FluxDeviceSecrets } from './secrets.ts';

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
    textFile(`${FLUX_BOOTSTRAP_DIR}/${components}`, 'flux-bootstrap', fluxComponentsYaml(fleet, cls, input, header(d, `Flux ${fleet.gitops.flux.version} controllers (${cls} sizing, ${d.profile.ramMiB} MiB board)`))),
    textFile(`${FLUX_BOOTSTRAP_DIR}/${secretsFile}`, 'flux-bootstrap', toYamlStream(fluxSecretObjects(d, fleet, secrets, input.registryCa), header(d, usesOci(fleet) ? 'registry pull credential, pinned registry CA, SOPS keys (one-time secrets)' : 'Git deploy key, pinned known_hosts, SOPS keys (one-time secrets)')), true),
    textFile(`${FLUX_BOOTSTRAP_DIR}/${sync}`, 'flux-bootstrap', toYamlStream(fluxSyncObjects(d, fleet), header(d, `${usesOci(fleet) ? 'OCIRepository' : 'GitRepository'} (every ${poll.text}) and Kustomizations for ${devicePath(d)}`))),
  ];
}

/**
 * POSIX sh for the first-boot program. Defines two functions:
 *   flux_place SRC_DIR   place the bootstrap files (in order) unless Flux already took over;
 *                        EDGEFORGE_FLUX_REBOOTSTRAP=1 forces a fresh bootstrap (e.g. a rotated deploy key)
 *   flux_install_handover  install /usr/local/sbin/edgeforge-flux-handover and a systemd timer that runs it
 *                        every 2 minutes until Flux owns itself (works across reboots and days offline)
 * Paths honour $R (an alternative root, as the first-boot program uses for tests).
 */
export function fluxFirstbootFragment(fleet: Pick<Fleet, 'k3s'>): string {
  const hostPathDir = fluxStorageMode(fleet) === 'hostPath' ? SOURCE_HOSTPATH : '';
  const files = FLUX_BOOTSTRAP_FILES.join(' ');
  return `# --- edgeforge: Flux bootstrap and hand-over (scripts/render/flux/bootstrap.ts, docs/gitops.md) ---
FLUX_MANIFESTS="\${R:-}${K3S_MANIFESTS_DIR}"
FLUX_STATE="\${R:-}${FLUX_STATE_DIR}"
FLUX_FILES="${files}"
FLUX_HOSTPATH="${hostPathDir}"

flux_place() {
  fp_src=$1
  mkdir -p "$FLUX_MANIFESTS" "$FLUX_STATE" || return 1
  if [ "\${EDGEFORGE_FLUX_REBOOTSTRAP:-0}" = 1 ]; then
    rm -f "$FLUX_STATE/handed-over"
    for fp_f in $FLUX_FILES; do rm -f "$FLUX_MANIFESTS/$fp_f.skip"; done
  elif [ -f "$FLUX_STATE/handed-over" ]; then
    echo "flux: Flux manages itself from Git since $(cat "$FLUX_STATE/handed-over"); bootstrap not placed again"
    return 0
  fi
  if [ -n "$FLUX_HOSTPATH" ]; then
    # source-controller runs as non-root; like local-path volumes, the directory is open and its parent is not
    mkdir -p "\${R:-}$FLUX_HOSTPATH" && chmod 0777 "\${R:-}$FLUX_HOSTPATH" || return 1
  fi
  fp_n=0
  for fp_f in $FLUX_FILES; do
    [ -f "$fp_src/$fp_f" ] || continue
    # the secrets file was removed after it was applied: never put a skipped file back
    [ -f "$FLUX_MANIFESTS/$fp_f.skip" ] && continue
    fp_mode=0644
    [ "$fp_f" = ${FLUX_SECRET_FILE} ] && fp_mode=0600
    # created with its final mode, renamed into place (K3s ignores the dot-file .tmp meanwhile)
    install -m "$fp_mode" "$fp_src/$fp_f" "$FLUX_MANIFESTS/.$fp_f.tmp" &&
      mv -f "$FLUX_MANIFESTS/.$fp_f.tmp" "$FLUX_MANIFESTS/$fp_f" || return 1
    fp_n=$((fp_n + 1))
  done
  echo "flux: placed $fp_n bootstrap file(s) in $FLUX_MANIFESTS"
}

flux_install_handover() {
  mkdir -p "\${R:-}/usr/local/sbin" "\${R:-}/etc/systemd/system" || return 1
  cat >"\${R:-}/usr/local/sbin/edgeforge-flux-handover" <<'EDGEFORGE_FLUX_EOF' || return 1
${fluxHandoverScript()}EDGEFORGE_FLUX_EOF
  chmod 0755 "\${R:-}/usr/local/sbin/edgeforge-flux-handover" || return 1
  cat >"\${R:-}/etc/systemd/system/edgeforge-flux-handover.service" <<'EDGEFORGE_FLUX_EOF' || return 1
[Unit]
Description=edgeforge: hand the Flux bootstrap over to Git once Flux reconciles itself
After=k3s.service
ConditionPathExists=!${FLUX_STATE_DIR}/handed-over

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/edgeforge-flux-handover
EDGEFORGE_FLUX_EOF
  cat >"\${R:-}/etc/systemd/system/edgeforge-flux-handover.timer" <<'EDGEFORGE_FLUX_EOF' || return 1
[Unit]
Description=edgeforge: retry the Flux hand-over every 2 minutes until it is done

[Timer]
OnBootSec=2min
OnCalendar=*:0/2
AccuracySec=30s

[Install]
WantedBy=timers.target
EDGEFORGE_FLUX_EOF
  if [ -z "\${R:-}" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload && systemctl enable --now edgeforge-flux-handover.timer || return 1
  fi
}
# --- end edgeforge Flux ---
`;
}

/**
 * The hand-over program (installed on the device). Idempotent; exits 0 while waiting so the timer retries.
 *  1. both Secrets exist -> the secrets file gets a .skip and is deleted (one-time secrets off the disk);
 *  2. Kustomization flux-system is Ready (Flux applied its own components and sync objects from Git) ->
 *     .skip for every bootstrap file, record the hand-over, stop the timer.
 */
export function fluxHandoverScript(): string {
  const files = FLUX_BOOTSTRAP_FILES.join(' ');
  return `#!/bin/sh
# edgeforge: hand the Flux bootstrap over from K3s's auto-deploy directory to Git (docs/gitops.md)
set -u
M="\${R:-}${K3S_MANIFESTS_DIR}"
S="\${R:-}${FLUX_STATE_DIR}"
KUBECTL="\${KUBECTL:-k3s kubectl}"
[ -f "$S/handed-over" ] && exit 0
mkdir -p "$S"
if [ -f "$M/${FLUX_SECRET_FILE}" ] && $KUBECTL -n flux-system get secret flux-system sops-gpg >/dev/null 2>&1; then
  : >"$M/${FLUX_SECRET_FILE}.skip"
  rm -f "$M/${FLUX_SECRET_FILE}"
  echo "edgeforge-flux-handover: Secrets applied; removed the bootstrap secrets file"
fi
ready=$($KUBECTL -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
if [ "$ready" != True ]; then
  echo "edgeforge-flux-handover: waiting for Flux to reconcile itself from Git (Ready=\${ready:-unknown})"
  exit 0
fi
for f in ${files}; do : >"$M/$f.skip"; done
rm -f "$M/${FLUX_SECRET_FILE}"
rev=$($KUBECTL -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.lastAppliedRevision}' 2>/dev/null || true)
printf '%s\\n' "\${rev:-unknown revision}" >"$S/handed-over"
echo "edgeforge-flux-handover: Flux manages itself from Git (\${rev:-?}); K3s will not re-apply the bootstrap"
if [ -z "\${R:-}" ] && command -v systemctl >/dev/null 2>&1; then systemctl disable --now edgeforge-flux-handover.timer >/dev/null 2>&1 || true; fi
exit 0
`;
}
