#!/bin/sh
# edgeforge: hand the Flux bootstrap over from K3s's auto-deploy directory to Git (docs/gitops.md)
set -u
M="${R:-}@K3S_MANIFESTS_DIR@"
S="${R:-}@FLUX_STATE_DIR@"
KUBECTL="${KUBECTL:-k3s kubectl}"
[ -f "$S/@HANDED_OVER@" ] && exit 0
mkdir -p "$S"
if [ -f "$M/@FLUX_SECRET_FILE@" ] && $KUBECTL -n flux-system get secret flux-system sops-gpg >/dev/null 2>&1; then
  : >"$M/@FLUX_SECRET_FILE@.skip"
  rm -f "$M/@FLUX_SECRET_FILE@"
  echo "edgeforge-flux-handover: Secrets applied; removed the bootstrap secrets file"
fi
ready=$($KUBECTL -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
if [ "$ready" != True ]; then
  echo "edgeforge-flux-handover: waiting for Flux to reconcile itself from Git (Ready=${ready:-unknown})"
  exit 0
fi
for f in @FLUX_FILES@; do : >"$M/$f.skip"; done
rm -f "$M/@FLUX_SECRET_FILE@"
rev=$($KUBECTL -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.lastAppliedRevision}' 2>/dev/null || true)
printf '%s\n' "${rev:-unknown revision}" >"$S/@HANDED_OVER@"
echo "edgeforge-flux-handover: Flux manages itself from Git (${rev:-?}); K3s will not re-apply the bootstrap"
if [ -z "${R:-}" ] && command -v systemctl >/dev/null 2>&1; then systemctl disable --now @HANDOVER_TIMER_NAME@ >/dev/null 2>&1 || true; fi
exit 0
