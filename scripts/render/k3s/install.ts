// The K3s install, both ways, as the shell the first-boot program runs (and `plan` shows).
// Online: the install script is fetched, checked against the pinned sha256, and only then run.
// Airgap: binary, images and script come from a local bundle, each checked, then
// INSTALL_K3S_SKIP_DOWNLOAD=true. Either way K3s is never started before the device has its own
// config: each device creates its own CA on first start.
import type { Fleet, ResolvedDevice } from '../../inventory/fleet.ts';

/** Where the bundle's files sit on the device (copied there by the seed or `provision`). */
export const AIRGAP_DIR = '/var/lib/edgeforge/bundle/k3s';

export function k3sInstallScript(d: Pick<ResolvedDevice, 'cluster'>, fleet: Pick<Fleet, 'k3s'>): string {
  const k = fleet.k3s;
  const exec = d.cluster.kind === 'multi-node-agent' ? 'agent' : 'server';
  if (k.install.mode === 'online') {
    return [
      '# online install: pinned version, install script verified before it runs',
      `curl -sfL ${k.install.installScriptUrl} -o /tmp/k3s-install.sh`,
      `echo "${k.install.installScriptSha256}  /tmp/k3s-install.sh" | sha256sum -c - \\`,
      '  || { echo "k3s install.sh does not match the pinned sha256: refusing to run it" >&2; exit 1; }',
      `INSTALL_K3S_VERSION="${k.version}" INSTALL_K3S_EXEC="${exec}" sh /tmp/k3s-install.sh`,
    ].join('\n');
  }
  const s = k.install.sha256;
  return [
    `# airgap install from the bundle in ${AIRGAP_DIR}: every file checked against the inventory's sha256`,
    `cd ${AIRGAP_DIR}`,
    'sha256sum -c - <<EOF || { echo "airgap bundle does not match the pinned sha256" >&2; exit 1; }',
    `${s.binary}  k3s-arm64`,
    `${s.images}  k3s-airgap-images-arm64.tar.zst`,
    `${s.installScript}  install.sh`,
    'EOF',
    'install -m 0755 k3s-arm64 /usr/local/bin/k3s',
    'install -d /var/lib/rancher/k3s/agent/images',
    'install -m 0644 k3s-airgap-images-arm64.tar.zst /var/lib/rancher/k3s/agent/images/',
    `INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION="${k.version}" INSTALL_K3S_EXEC="${exec}" sh ./install.sh`,
  ].join('\n');
}
