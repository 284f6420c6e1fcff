# shellcheck shell=sh
# shellcheck disable=SC2034 # used by the functions sourced after this file
# edgeforge disk encryption: the helpers the encryption functions expect, for when they run as their own
# program (bundle/encryption/*.sh). Inside the first-boot program, its lib.sh provides the same contract:
#   R (EDGEFORGE_ROOT, no trailing /), BUNDLE, STATE, log MSG, die MSG (exits 1), sys CMD ARGS (EDGEFORGE_SYS
#   wrapper for commands that change the system), have CMD.
# Keep this file in step with scripts/render/firstboot/lib.sh (same variables, same environment).

R="${EDGEFORGE_ROOT:-}"
R="${R%/}"
BUNDLE="${EDGEFORGE_BUNDLE:-$R/var/lib/edgeforge/bundle}"
STATE="$R/var/lib/edgeforge"
LOG="${EDGEFORGE_LOG:-$R/var/log/edgeforge-firstboot.log}"
STEP="${STEP:-encrypt_data_volume}"

log() {
  printf '%s edgeforge-firstboot[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >&2
  if [ -d "${LOG%/*}" ]; then
    printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >>"$LOG" 2>/dev/null || true
  fi
}

die() {
  log "FAILED: $*"
  exit 1
}

sys() {
  if [ -n "${EDGEFORGE_SYS:-}" ]; then
    "$EDGEFORGE_SYS" "$@"
  else
    "$@"
  fi
}

have() {
  [ -n "${EDGEFORGE_SYS:-}" ] || command -v "$1" >/dev/null 2>&1
}
