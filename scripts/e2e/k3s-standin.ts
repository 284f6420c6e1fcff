// K3s cannot be downloaded here, so the airgap bundle the test builds with holds a STAND-IN: `k3s-arm64` is a
// shell script that records how it was called and then idles like a server, `install.sh` does what the real
// installer does on the airgap path (INSTALL_K3S_SKIP_DOWNLOAD=true: unit file, enable, start) and records
// its environment, and the images archive is a tiny real tar.zst. The checks read those records from the
// disk: they prove the airgap path was taken and K3s was started with the config edgeforge wrote, not that
// Kubernetes runs.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { FLUX_DEFAULT_VERSION } from '../inventory/flux-versions.ts';

$.verbose = false;

export const STANDIN_LOG = '/var/lib/edgeforge-e2e/k3s-standin.log';
export const INSTALL_LOG = '/var/lib/edgeforge-e2e/k3s-install.log';

const K3S = `#!/bin/sh
# edgeforge e2e STAND-IN for the K3s binary (the real one cannot be downloaded in the test environment).
# Records each call, the image archives a real K3s would import at start, and each manifest it would apply
# from its auto-deploy directory while it runs; otherwise idles like a running server.
mkdir -p /var/lib/edgeforge-e2e
L=${STANDIN_LOG}
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) k3s $*" >>"$L"
case "$1" in
  --version|-v|version) echo "k3s version @VERSION@ (edgeforge e2e stand-in)"; exit 0 ;;
  server|agent)
    if [ -f /etc/rancher/k3s/config.yaml ]; then
      echo "config /etc/rancher/k3s/config.yaml sha256 $(sha256sum /etc/rancher/k3s/config.yaml | cut -d' ' -f1)" >>"$L"
    else
      echo "config missing" >>"$L"
    fi
    # like K3s before v1.31.5 (the strictest case): the image archives in agent/images are imported once, at start (with their sha256)
    for f in /var/lib/rancher/k3s/agent/images/*; do [ -f "$f" ] && echo "images $f sha256 $(sha256sum "$f" | cut -d' ' -f1)" >>"$L"; done
    echo "running $1" >>"$L"
    # like K3s's deploy controller: the auto-deploy directory is watched while it runs (dot-files are not read)
    seen=
    while :; do
      for f in /var/lib/rancher/k3s/server/manifests/*; do
        [ -f "$f" ] || continue
        case " $seen " in *" $f "*) continue ;; esac
        seen="$seen $f"
        echo "manifest $f" >>"$L"
      done
      sleep 5
    done ;;
  # no cluster behind this stand-in: kubectl/crictl/ctr must fail, or callers (the Flux hand-over) would
  # believe objects exist that nothing ever applied
  kubectl|crictl|ctr) echo "k3s stand-in: no cluster to ask" >&2; exit 1 ;;
  *) exit 0 ;;
esac
`;

const INSTALL = `#!/bin/sh
# edgeforge e2e STAND-IN for K3s's install.sh: the airgap path only (INSTALL_K3S_SKIP_DOWNLOAD=true), as
# the real script does it: the binary must already be in /usr/local/bin, then a unit file, enable, start.
set -e
mkdir -p /var/lib/edgeforge-e2e
L=${INSTALL_LOG}
{ echo "install.sh stand-in ran $(date -u +%Y-%m-%dT%H:%M:%SZ)"; env | grep '^INSTALL_K3S_' | sort; } >>"$L"
if [ "$INSTALL_K3S_SKIP_DOWNLOAD" != true ]; then
  echo "this stand-in can only install from an airgap bundle (INSTALL_K3S_SKIP_DOWNLOAD=true)" | tee -a "$L" >&2
  exit 1
fi
[ -x /usr/local/bin/k3s ] || { echo "no executable /usr/local/bin/k3s" | tee -a "$L" >&2; exit 1; }
cmd=\${INSTALL_K3S_EXEC:-server}
svc=k3s
case "$cmd" in agent*) svc=k3s-agent ;; esac
cat >/etc/systemd/system/$svc.service <<EOF
[Unit]
Description=Lightweight Kubernetes (edgeforge e2e stand-in)
Wants=network-online.target
After=network-online.target
[Service]
Type=exec
ExecStart=/usr/local/bin/k3s $cmd
Restart=always
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable $svc.service
echo "enabled $svc.service" >>"$L"
if [ "$INSTALL_K3S_SKIP_START" != true ]; then
  systemctl restart $svc.service
  echo "started $svc.service" >>"$L"
fi
`;

export interface StandinBundle {
  dir: string;
  /** the K3s release it stands in for (what `k3s --version` prints) */
  version: string;
  sha256: { binary: string; images: string; installScript: string };
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export async function makeK3sStandin(dir: string, version = 'v1.35.6+k3s1'): Promise<StandinBundle> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'k3s-arm64'), K3S.replace('@VERSION@', version), { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'install.sh'), INSTALL, { mode: 0o755 });
  const src = path.join(dir, '.images');
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, 'README'), `edgeforge e2e stand-in for k3s-airgap-images-arm64 ${version} (no images)\n`);
  const images = path.join(dir, 'k3s-airgap-images-arm64.tar.zst');
  await $`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C ${src} -cf - README | zstd -q -f -o ${images}`;
  await fs.rm(src, { recursive: true });
  return {
    dir,
    version,
    sha256: {
      binary: sha(await fs.readFile(path.join(dir, 'k3s-arm64'))),
      images: sha(await fs.readFile(images)),
      installScript: sha(await fs.readFile(path.join(dir, 'install.sh'))),
    },
  };
}

/**
 * A stand-in for Flux's release install.yaml (not downloadable here either): the namespace and the four
 * controller Deployments the build looks for, labelled with the pinned version. Nothing runs them (K3s is a
 * stand-in too); the test checks that the bootstrap manifests made from it land where K3s reads them.
 */
export async function makeFluxStandin(dir: string, version = FLUX_DEFAULT_VERSION): Promise<{ file: string; sha256: string }> {
  await fs.mkdir(dir, { recursive: true });
  const labels = `    app.kubernetes.io/instance: flux-system\n    app.kubernetes.io/part-of: flux\n    app.kubernetes.io/version: ${version}\n`;
  const docs = [
    `# edgeforge e2e STAND-IN for Flux ${version} install.yaml (the release cannot be downloaded in the test environment)\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n  labels:\n${labels}`,
    ...['source-controller', 'kustomize-controller', 'helm-controller', 'notification-controller'].map(
      (c) =>
        `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${c}\n  namespace: flux-system\n  labels:\n${labels}    app.kubernetes.io/component: ${c}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: ${c}\n  template:\n    metadata:\n      labels:\n        app: ${c}\n    spec:\n      containers:\n        - name: manager\n          image: ghcr.io/fluxcd/${c}:stand-in\n`,
    ),
  ];
  const file = path.join(dir, 'install.yaml');
  const text = docs.join('---\n');
  await fs.writeFile(file, text);
  return { file, sha256: sha(text) };
}
