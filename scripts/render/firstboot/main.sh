# shellcheck shell=sh
# edgeforge first-boot program: run the steps in order, resuming after the last one the journal says is done.
#   run      (default) one attempt: every unfinished step, stop at the first failure (provision, by hand)
#   service  what edgeforge-firstboot.service runs: attempts until every step is done, a failed one retried
#            after backoff_delay (30 s doubling to 15 min, jittered), forever; a permanent failure stops it
#   status   print where first boot stands (the device command `edgeforge-firstboot status`)
#   retry    clear a permanent failure and start the service again (after fixing its cause)
#   backoff [N]  print the retry schedule (seconds after each of the first N failed attempts)
# EDGEFORGE_STEPS="preflight identity" runs those steps whatever the journal says (`provision --dry-run`
# runs preflight only); EDGEFORGE_FRESH=1 (`provision --force`) forgets the journal first.

ALL_STEPS="preflight identity kernel_firewall encrypt_data_volume k3s flux_bootstrap erase_secrets record"

# one attempt: the unfinished steps in order; exits 0 (all done), 1 (retry later) or EXIT_PERMANENT
fb_attempt() {
  # cloud-init, the service and a `provision` run must not interleave; a run waits for an attempt in progress
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w "${EDGEFORGE_LOCK_WAIT:-900}" 9 || die "another run of the first-boot program holds $STATE/.lock; wait for it to finish"
  fi
  # the bundle cannot change under the lock (provision swaps it holding the lock): hash it once per attempt,
  # here in the main shell (bundle_id runs in $(...) subshells, which could not keep what they computed)
  BUNDLE_ID=
  BUNDLE_ID=$(bundle_id)
  # scratch files an interrupted attempt left (the real ones are written with a rename, never here)
  find "$STATE/tmp" -maxdepth 1 -type f -delete 2>/dev/null
  m_steps="${EDGEFORGE_STEPS:-$ALL_STEPS}"
  for m_step in $m_steps; do
    case " $ALL_STEPS " in *" $m_step "*) ;; *) die_permanent "unknown step '$m_step' in EDGEFORGE_STEPS (steps: $ALL_STEPS)" ;; esac
  done
  log "device $EF_DEVICE_ID: running [$m_steps] with bundle $BUNDLE on root ${R:-/}"
  for m_step in $m_steps; do
    STEP=$m_step
    # preflight always runs (read-only: it checks the bundle this run uses)
    if [ -z "${EDGEFORGE_STEPS:-}" ] && [ "$m_step" != preflight ] && step_skip "$m_step"; then
      STEPS_DONE="${STEPS_DONE:+$STEPS_DONE }$m_step"
      continue
    fi
    ATTEMPT=$(($(attempts_of "$m_step") + 1))
    log "begin (attempt $ATTEMPT)"
    [ "${EDGEFORGE_STEPS:-}" = preflight ] || status_write running
    milestone running
    "step_$m_step"
    [ "${EDGEFORGE_STEPS:-}" = preflight ] || journal_done "$m_step"
    [ "$m_step" != preflight ] || [ -n "${EDGEFORGE_STEPS:-}" ] || fb_install_service
    STEPS_DONE="${STEPS_DONE:+$STEPS_DONE }$m_step"
    log "ok"
    # the log on the disk says what the journal says, up to this line, even after a power cut
    [ ! -f "$LOG" ] || flush "$LOG"
  done
  STEP=end
  [ -n "${EDGEFORGE_STEPS:-}" ] && return 0
  rm -f "$JOURNAL/attempts"
  ATTEMPT=0
  status_write 'done'
  if [ -f "$STATE/reboot-required" ] && [ -z "$R" ] && [ "${EDGEFORGE_NO_REBOOT:-}" != 1 ]; then
    rm -f "$STATE/reboot-required"
    log "rebooting in one minute to turn on the kernel arguments (K3s starts after it)"
    sys shutdown -r +1 "edgeforge: reboot for kernel cgroup arguments" || die "cannot schedule the reboot; reboot by hand"
  fi
  log "done"
  milestone 'done'
}

# the unit and the device command (the seed wrote them already; a `provision` delivery gets them here), enabled
# so that a reboot before the end resumes first boot
fb_install_service() {
  fi_changed=0
  put_file "$BUNDLE/system/$EF_FIRSTBOOT_UNIT" "$R/etc/systemd/system/$EF_FIRSTBOOT_UNIT" 0644
  [ "$CHANGED" = 0 ] || fi_changed=1
  put_file "$BUNDLE/system/${EF_FIRSTBOOT_COMMAND##*/}" "$R$EF_FIRSTBOOT_COMMAND" 0755
  if [ "$fi_changed" = 1 ] || [ ! -f "$STATE/firstboot-unit-enabled" ]; then
    sys systemctl daemon-reload || die "systemctl daemon-reload failed"
    sys systemctl enable "$EF_FIRSTBOOT_UNIT" >/dev/null 2>&1 || die "cannot enable $EF_FIRSTBOOT_UNIT"
    : >"$STATE/firstboot-unit-enabled"
  fi
}

# after a permanent failure: the one-time secrets go now (a device that can never finish must not keep them)
fb_after_permanent() {
  log "permanent failure: erasing the one-time secrets now; deliver the bundle again (edgeforge provision) or re-flash after fixing the cause"
  (STEP=erase_secrets && step_erase_secrets) || log "warning: could not erase every one-time secret (see above)"
}

fb_service() {
  if [ "$(fb_get state)" = failed ] && [ "$(fb_get retry)" = permanent ] && [ "$(fb_get bundle)" = "$(bundle_id)" ]; then
    STEP=$(fb_get step)
    log "a permanent failure is recorded at step $STEP: $(fb_get error) — not retried. Fix the cause, then: $EF_FIRSTBOOT_COMMAND retry"
    exit "$EXIT_PERMANENT"
  fi
  while :; do
    (fb_attempt)
    fs_rc=$?
    if [ "$fs_rc" = 0 ]; then
      STEP=end
      log "first boot finished"
      exit 0
    fi
    STEP=$(fb_get step)
    ATTEMPT=$(fb_get attempt)
    fs_err=$(fb_get error)
    if [ "$fs_rc" = "$EXIT_PERMANENT" ]; then
      log "attempt $ATTEMPT at step $STEP failed permanently: $fs_err; not retried ('$EF_FIRSTBOOT_COMMAND status')"
      fb_after_permanent
      exit "$EXIT_PERMANENT"
    fi
    fs_wait=$(backoff_delay "${ATTEMPT:-1}" "$EF_DEVICE_ID")
    fs_next=$(date -u -d "@$(($(date +%s) + fs_wait))" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "in $fs_wait s")
    status_write failed "$fs_err" temporary "$fs_next"
    log "attempt $ATTEMPT at step $STEP failed: $fs_err; next attempt in $fs_wait s ($fs_next)"
    sleep "$fs_wait"
  done
}

main() {
  umask 077
  case ${1:-run} in
    status | backoff) ;;
    *)
      mkdir -p "$STATE/tmp" "${LOG%/*}" || die "cannot create $STATE"
      chmod 0700 "$STATE/tmp"
      ;;
  esac
  case ${1:-run} in
    status)
      fb_print_status
      ;;
    run)
      # `provision --force`: every step again, whatever the journal says
      if [ "${EDGEFORGE_FRESH:-}" = 1 ]; then rm -rf "$JOURNAL"; fi
      (fb_attempt)
      mr_rc=$?
      [ "$mr_rc" != "$EXIT_PERMANENT" ] || fb_after_permanent
      exit "$mr_rc"
      ;;
    service)
      fb_service
      ;;
    backoff)
      # the retry schedule this device would follow: "ATTEMPT SECONDS" for the first N failed attempts
      mb_i=1
      while [ "$mb_i" -le "${2:-12}" ]; do
        echo "$mb_i $(backoff_delay "$mb_i" "$EF_DEVICE_ID")"
        mb_i=$((mb_i + 1))
      done
      ;;
    retry)
      rm -f "$JOURNAL/attempts"
      [ ! -f "$FBSTATE" ] || status_write failed "retry asked by an operator" temporary
      if [ -z "$R" ] && have systemctl; then
        sys systemctl restart --no-block "$EF_FIRSTBOOT_UNIT" || die "cannot restart $EF_FIRSTBOOT_UNIT"
        echo "first boot restarted; follow it with: journalctl -fu $EF_FIRSTBOOT_UNIT"
      else
        fb_service
      fi
      ;;
    *)
      echo "usage: ${EF_FIRSTBOOT_COMMAND##*/} [run|service|status|retry|backoff [N]]" >&2
      exit 2
      ;;
  esac
}

main "$@"
