// The K3s install, both ways, as the shell the first-boot program runs (and `plan` shows).
// Online: the install script is fetched, checked against the pinned sha256, and only then run.
// Airgap: binary, images and script come from a local bundle, each checked, then
// INSTALL_K3S_SKIP_DOWNLOAD=true. Either way K3s is never started before the device has its own
// config: each device creates its own CA on first start.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';
import { BUNDLE_DIR, K3S_AIRGAP, K3S_IMAGES_DIR } from '../../device/layout.ts';
import { deviceInstallVersion, ringAirgap, ringOf } from '../day2/rings.ts';

/** All zeros: the example inventory's visible placeholder for the install script's sha256 (never a real-looking value). */
export const PLACEHOLDER_SHA256 = '0'.repeat(64);

/**
 * Where devices fetch K3s's install.sh in online mode: the inventory's URL, or the pinned release's own tag —
 * get.k3s.io serves whatever the latest install.sh is, so a pinned sha256 of it breaks at the next K3s release.
 */
export function k3sInstallScriptUrl(k3s: Pick<Fleet['k3s'], 'version' | 'install'>): string {
  if (k3s.install.mode !== 'online') return '';
  return k3s.install.installScriptUrl ?? `https://raw.githubusercontent.com/k3s-io/k3s/${k3s.version}/install.sh`;
}

/** A warning when the online install's sha256 is still the placeholder: every device would refuse to install K3s. */
export function k3sInstallPinProblem(fleet: Pick<Fleet, 'k3s'>): string | undefined {
  const k = fleet.k3s;
  if (k.install.mode !== 'online' || k.install.installScriptSha256 !== PLACEHOLDER_SHA256) return undefined;
  const url = k3sInstallScriptUrl(k);
  return `k3s.install.installScriptSha256 is the all-zeros placeholder: every device will refuse to run K3s's install script (hash mismatch) until you pin it — run: curl -sfL ${url} | sha256sum — and put that value in the inventory`;
}

/** Where the airgap files sit on a device `provision` delivered them to (a flashed one reads the K3s partition). */
export const AIRGAP_DIR = `${BUNDLE_DIR}/k3s/airgap`;

export function k3sInstallScript(d: Pick<ResolvedDevice, 'cluster' | 'canary'>, fleet: Pick<Fleet, 'k3s'>): string {
  const k = fleet.k3s;
  const version = deviceInstallVersion(d, fleet);
  const exec = d.cluster.kind === 'multi-node-agent' ? 'agent' : 'server';
  if (k.install.mode === 'online') {
    return [
      '# online install: pinned version, install script verified before it runs',
      `curl -sfL ${k3sInstallScriptUrl(k)} -o /tmp/k3s-install.sh`,
      `echo "${k.install.installScriptSha256}  /tmp/k3s-install.sh" | sha256sum -c - \\`,
      '  || { echo "k3s install.sh does not match the pinned sha256: refusing to run it" >&2; exit 1; }',
      `INSTALL_K3S_VERSION="${version}" INSTALL_K3S_EXEC="${exec}" sh /tmp/k3s-install.sh`,
    ].join('\n');
  }
  const a = ringAirgap(fleet, ringOf(d))!;
  const s = a.sha256;
  return [
    `# airgap install of K3s ${a.version} (${a.key}): from ${AIRGAP_DIR} (provision), or the disk image's K3s partition${a.dir ? ` (${a.dir}/)` : ''}; every file checked against the inventory's sha256`,
    `cd ${AIRGAP_DIR}`,
    'sha256sum -c - <<EOF || { echo "airgap bundle does not match the pinned sha256" >&2; exit 1; }',
    `${s.binary}  ${K3S_AIRGAP.binary}`,
    `${s.images}  ${K3S_AIRGAP.images}`,
    `${s.installScript}  ${K3S_AIRGAP.installScript}`,
    'EOF',
    `install -m 0755 ${K3S_AIRGAP.binary} /usr/local/bin/k3s`,
    `install -d ${K3S_IMAGES_DIR}`,
    `install -m 0644 ${K3S_AIRGAP.images} ${K3S_IMAGES_DIR}/`,
    `INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION="${version}" INSTALL_K3S_EXEC="${exec}" sh ./${K3S_AIRGAP.installScript}`,
  ].join('\n');
}
