# --- edgeforge: Flux bootstrap and hand-over (scripts/render/flux/bootstrap.ts, docs/gitops.md) ---
FLUX_MANIFESTS="${R:-}@K3S_MANIFESTS_DIR@"
FLUX_STATE="${R:-}@FLUX_STATE_DIR@"
FLUX_FILES="@FLUX_FILES@"
FLUX_HOSTPATH="@FLUX_HOSTPATH@"

flux_place() {
  fp_src=$1
  mkdir -p "$FLUX_MANIFESTS" "$FLUX_STATE" || return 1
  if [ "${EDGEFORGE_FLUX_REBOOTSTRAP:-0}" = 1 ]; then
    rm -f "$FLUX_STATE/@HANDED_OVER@"
    for fp_f in $FLUX_FILES; do rm -f "$FLUX_MANIFESTS/$fp_f.skip"; done
  elif [ -f "$FLUX_STATE/@HANDED_OVER@" ]; then
    echo "flux: Flux manages itself from Git since $(cat "$FLUX_STATE/@HANDED_OVER@"); bootstrap not placed again"
    return 0
  fi
  if [ -n "$FLUX_HOSTPATH" ]; then
    # source-controller runs as non-root; like local-path volumes, the directory is open and its parent is not
    mkdir -p "${R:-}$FLUX_HOSTPATH" && chmod 0777 "${R:-}$FLUX_HOSTPATH" || return 1
  fi
  fp_n=0
  for fp_f in $FLUX_FILES; do
    [ -f "$fp_src/$fp_f" ] || continue
    # the secrets file was removed after it was applied: never put a skipped file back
    [ -f "$FLUX_MANIFESTS/$fp_f.skip" ] && continue
    fp_mode=0644
    [ "$fp_f" = @FLUX_SECRET_FILE@ ] && fp_mode=0600
    # created with its final mode, renamed into place (K3s ignores the dot-file .tmp meanwhile)
    install -m "$fp_mode" "$fp_src/$fp_f" "$FLUX_MANIFESTS/.$fp_f.tmp" &&
      mv -f "$FLUX_MANIFESTS/.$fp_f.tmp" "$FLUX_MANIFESTS/$fp_f" || return 1
    fp_n=$((fp_n + 1))
  done
  echo "flux: placed $fp_n bootstrap file(s) in $FLUX_MANIFESTS"
}

flux_install_handover() {
  mkdir -p "${R:-}@PROGRAM_DIR@" "${R:-}@UNIT_DIR@" || return 1
  cat >"${R:-}@HANDOVER_PROGRAM@" <<'EDGEFORGE_FLUX_EOF' || return 1
@HANDOVER_PROGRAM_TEXT@
EDGEFORGE_FLUX_EOF
  chmod 0755 "${R:-}@HANDOVER_PROGRAM@" || return 1
  cat >"${R:-}@HANDOVER_SERVICE@" <<'EDGEFORGE_FLUX_EOF' || return 1
@HANDOVER_SERVICE_UNIT@
EDGEFORGE_FLUX_EOF
  cat >"${R:-}@HANDOVER_TIMER@" <<'EDGEFORGE_FLUX_EOF' || return 1
@HANDOVER_TIMER_UNIT@
EDGEFORGE_FLUX_EOF
  if [ -z "${R:-}" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload && systemctl enable --now @HANDOVER_TIMER_NAME@ || return 1
  fi
}
# --- end edgeforge Flux ---
