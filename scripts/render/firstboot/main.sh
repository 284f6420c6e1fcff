# shellcheck shell=sh
# edgeforge first-boot program: run the steps in order, stop on the first failure.
# EDGEFORGE_STEPS="preflight identity" runs a subset (`provision --dry-run` runs preflight only).

ALL_STEPS="preflight identity kernel_firewall encrypt_data_volume k3s flux_bootstrap erase_secrets record"

main() {
  umask 077
  mkdir -p "$STATE/tmp" "${LOG%/*}" || die "cannot create $STATE"
  chmod 0700 "$STATE/tmp"
  # cloud-init and a `provision` run must not interleave
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -n 9 || die "another run of the first-boot program holds $STATE/.lock; wait for it to finish"
  fi
  m_steps="${EDGEFORGE_STEPS:-$ALL_STEPS}"
  for m_step in $m_steps; do
    case " $ALL_STEPS " in *" $m_step "*) ;; *) die "unknown step '$m_step' in EDGEFORGE_STEPS (steps: $ALL_STEPS)" ;; esac
  done
  log "device $EF_DEVICE_ID: running [$m_steps] with bundle $BUNDLE on root ${R:-/}"
  for m_step in $m_steps; do
    STEP=$m_step
    log "begin"
    milestone running
    "step_$m_step"
    STEPS_DONE="${STEPS_DONE:+$STEPS_DONE }$m_step"
    log "ok"
  done
  STEP=end
  if [ -f "$STATE/reboot-required" ] && [ -z "$R" ] && [ "${EDGEFORGE_NO_REBOOT:-}" != 1 ]; then
    rm -f "$STATE/reboot-required"
    log "rebooting in one minute to turn on the kernel arguments (K3s starts after it)"
    sys shutdown -r +1 "edgeforge: reboot for kernel cgroup arguments" || die "cannot schedule the reboot; reboot by hand"
  fi
  log "done"
  milestone 'done'
}

main "$@"
