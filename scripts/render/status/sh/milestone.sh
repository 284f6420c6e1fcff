# shellcheck shell=sh
# The status stage's part of the first-boot program (composed after steps.sh, before main.sh): it redefines
# `milestone` (a no-op in lib.sh) to start the status reporter, which sends the first-boot status file
# (EF_STATUS_STATE; the first-boot program writes it before each milestone: firstboot/lib.sh status_write). The reporter is installed at the first milestone after preflight, so a dry run
# (EDGEFORGE_STEPS=preflight) changes nothing and an unverified bundle installs nothing.
MS_BUSY=0
MS_INSTALLED=0

milestone() {
  [ "$MS_BUSY" = 0 ] || return 0
  case " ${EDGEFORGE_STEPS:-all} " in " preflight ") return 0 ;; esac
  MS_BUSY=1
  ms_changed=$CHANGED
  if [ "$MS_INSTALLED" = 0 ] && [ "$STEP" != preflight ] && [ -f "$BUNDLE/status/status.conf" ]; then
    status_install
    MS_INSTALLED=1
  fi
  if [ "$MS_INSTALLED" = 1 ]; then
    # --no-block: first boot never waits for the network or the broker; the report runs beside it
    sys systemctl start --no-block edgeforge-status.service >/dev/null 2>&1 || log "warning: cannot start edgeforge-status.service (the timer reports later)"
  fi
  CHANGED=$ms_changed
  MS_BUSY=0
}

# the reporter, its settings, the broker CA and this device's broker credential (0600, root filesystem:
# not a one-time secret, so a device whose data volume is locked can still say so)
status_install() {
  have mosquitto_pub || log "WARNING: mosquitto_pub is not installed (package mosquitto-clients, required by the base-image profiles): this device cannot report its status until it is"
  si_dir="$R$EF_STATUS_DIR"
  mkdir -p "$si_dir" || die "cannot create $si_dir"
  chmod 0700 "$si_dir" || die "cannot chmod $si_dir"
  put_file "$BUNDLE/status/status.conf" "$si_dir/status.conf" 0644
  put_file "$BUNDLE/status/ca.pem" "$si_dir/ca.pem" 0644
  put_file "$BUNDLE/status/mosquitto_pub" "$si_dir/mosquitto_pub" 0600
  install_timer_job "$BUNDLE/status" "$EF_STATUS_PROGRAM" "$EF_STATUS_SERVICE" "$EF_STATUS_TIMER" \
    "status reporting on: edgeforge-status.timer sends this device's status to the fleet broker"
}
