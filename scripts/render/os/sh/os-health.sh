# shellcheck shell=sh
# edgeforge-os-health: after every boot (edgeforge-os-health.service), decide what the boot loader's try means.
#   a trial of this slot  wait for the device to be healthy (first boot finished, the data volume open, K3s, the
#                         firewall and SSH active) up to EFO_HEALTH_TIMEOUT seconds: then `rauc status mark-good`;
#                         a unit that failed, or the time running out: mark-bad and reboot into the old slot
#   a trial of the other  it did not come up far enough to check itself (panic, hang, power cut, watchdog):
#                         the boot loader came back here by itself; recorded as a rollback, that slot marked bad
#   otherwise             a committed slot: marked good (the boot loader counts every boot as a try)
# Flux's reconciliation is deliberately not part of it: it needs the network, and a device that cannot reach Git
# must not roll back a good release. After os-lib.sh.

OS_SETTLE=${EDGEFORGE_OS_SETTLE:-30}

# one look: 0 healthy, 1 not yet, 2 failed for good; OC_WHY says what
os_check_once() {
  oc_rc=0
  OC_WHY=
  for oc_u in "$EFO_K3S_SERVICE.service" edgeforge-nftables.service ssh.service; do
    oc_st=$(sys systemctl is-active "$oc_u" 2>/dev/null)
    case $oc_st in
      active) ;;
      failed)
        OC_WHY="$oc_u failed ($(sys systemctl show -p Result --value "$oc_u" 2>/dev/null))"
        return 2
        ;;
      *)
        OC_WHY="$oc_u is ${oc_st:-unknown}"
        oc_rc=1
        ;;
    esac
  done
  if [ -f "$R$EF_DATA_CONF" ]; then
    if [ ! -e "$R/dev/mapper/$EF_DATA_NAME" ]; then OC_WHY="the data volume is not open yet ($(head -n 1 "$R$EF_DATA_STATUS" 2>/dev/null || echo 'no status'))"; oc_rc=1; fi
    if [ -z "$R" ]; then
      for oc_b in $EF_DATA_BINDS; do mountpoint -q "${oc_b%%:*}" || { OC_WHY="${oc_b%%:*} is not mounted from the data volume"; oc_rc=1; }; done
    fi
  fi
  oc_fb=$(sed -n 's/^state=//p' "$R$EF_STATUS_STATE" 2>/dev/null)
  case $oc_fb in
    done) ;;
    failed)
      if [ "$(sed -n 's/^retry=//p' "$R$EF_STATUS_STATE")" = permanent ]; then OC_WHY="first boot failed permanently: $(sed -n 's/^error=//p' "$R$EF_STATUS_STATE")"; return 2; fi
      OC_WHY="first boot is retrying: $(sed -n 's/^error=//p' "$R$EF_STATUS_STATE")"
      oc_rc=1
      ;;
    *) OC_WHY="first boot has not finished (${oc_fb:-no status})"; oc_rc=1 ;;
  esac
  return $oc_rc
}

# 0 once healthy twice, OS_SETTLE seconds apart (K3s did not restart in between); 1 with OC_WHY otherwise
os_check_wait() {
  cw_end=$(($(date +%s) + ${EFO_HEALTH_TIMEOUT:-900}))
  cw_ok=0
  while :; do
    os_check_once
    cw_rc=$?
    [ "$cw_rc" != 2 ] || return 1
    if [ "$cw_rc" = 0 ]; then
      cw_ok=$((cw_ok + 1))
      [ "$cw_ok" -lt 2 ] || return 0
    else
      cw_ok=0
    fi
    if [ "$(date +%s)" -ge "$cw_end" ]; then
      OC_WHY="not healthy after ${EFO_HEALTH_TIMEOUT:-900} s: $OC_WHY"
      return 1
    fi
    if [ "$cw_ok" = 1 ]; then sleep "$OS_SETTLE"; else sleep 5; fi
  done
}

# the status reporter, when the device has one, says it now rather than at its next period
os_report() {
  if [ -z "$R" ] && [ -f "$EF_STATUS_SERVICE" ]; then sys systemctl start --no-block "${EF_STATUS_SERVICE##*/}" >/dev/null 2>&1 || true; fi
}

# os_rollback VERSION REASON: one more time VERSION came back (the count is per release, in a row)
os_rollback() {
  rb_n=1
  if [ "$(os_state ROLLBACK_VERSION)" = "$1" ]; then rb_n=$(($(os_state ROLLBACK_COUNT) + 1)); fi
  os_state_set TRIAL= TRIAL_VERSION= TRIAL_AT= TRIAL_STAGE= "ROLLBACK_VERSION=$1" "ROLLBACK_AT=$(os_now)" "ROLLBACK_REASON=$2" "ROLLBACK_COUNT=$rb_n" "NOTE=$(os_now): $1 rolled back: $2"
  log "ROLLBACK: $1 did not pass its trial ($rb_n time(s) in a row): $2"
}

os_health_main() {
  os_load
  hb=$(os_booted)
  if [ -z "$hb" ]; then
    log "no rauc.slot= on the kernel command line: not booted through the A/B boot loader; nothing to decide"
    return 0
  fi
  ht=$(os_state TRIAL)
  hv=$(os_state TRIAL_VERSION)
  if [ -n "$ht" ] && [ "$ht" != "$hb" ]; then
    if [ "$(os_state TRIAL_STAGE)" = installing ]; then
      os_state_set TRIAL= TRIAL_VERSION= TRIAL_AT= TRIAL_STAGE= "NOTE=$(os_now): the install of $hv into slot $ht stopped before it was activated (power cut or crash); slot $hb kept running; the next window installs it again"
      log "the install of $hv into slot $ht was interrupted before it was activated; slot $hb ($(os_state "${hb}_VERSION")) runs as before"
    else
      os_rollback "$hv" "slot $ht did not come up far enough to check its health (kernel panic, hang, power cut or watchdog during its trial boot); the boot loader went back to slot $hb"
      os_rauc status mark-bad other || log "warning: rauc could not mark slot $ht bad"
    fi
    os_rauc status mark-good booted || log "warning: rauc could not mark slot $hb good"
    os_report
    return 0
  fi
  if [ -n "$ht" ]; then
    log "trial boot of $hv in slot $hb: checking its health (up to ${EFO_HEALTH_TIMEOUT:-900} s)"
    if os_check_wait; then
      os_rauc status mark-good booted || die "rauc could not mark slot $hb good; it stays on trial (the next boot goes back to slot $(os_other "$hb"))"
      hr=
      [ "$(os_state ROLLBACK_VERSION)" != "$hv" ] || hr="ROLLBACK_COUNT=0"
      os_state_set TRIAL= TRIAL_VERSION= TRIAL_AT= TRIAL_STAGE= "GOOD_AT=$(os_now)" "NOTE=$(os_now): $hv in slot $hb passed its health check" $hr
      log "slot $hb passed its health check: $hv is marked good"
      os_report
      return 0
    fi
    os_rollback "$hv" "health check: $OC_WHY"
    os_rauc status mark-bad booted || log "warning: rauc could not mark slot $hb bad (the boot loader goes back anyway: its try is used up)"
    sync
    log "rebooting into slot $(os_other "$hb") ($(os_state "$(os_other "$hb")_VERSION"))"
    sys systemctl reboot || die "cannot reboot; the next boot goes back to slot $(os_other "$hb")"
    return 0
  fi
  os_rauc status mark-good booted || log "warning: rauc could not mark slot $hb good (the next boot may try the other slot)"
  [ -z "$(os_state ROLLBACK_VERSION)" ] || os_report
}
